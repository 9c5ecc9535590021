"""``reconet-app``: a local web app (Gradio) over the same pipeline as the command line.

Optional: ``pip install "reconet[app]"``. The core package never imports this one.

* :mod:`~reconet.app.catalog`: the models and styles the page offers;
* :mod:`~reconet.app.jobs`: preview, stylize and compare, as plain functions over
  :mod:`reconet.inference` and :mod:`reconet.evaluation`;
* :mod:`~reconet.app.training`: add-a-style as a background ``reconet-train`` process;
* :mod:`~reconet.app.ui`: the Gradio page (the only module that imports Gradio).
"""
