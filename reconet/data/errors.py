"""Errors and warnings raised by the datasets in :mod:`reconet.data`."""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset that cannot be used: root missing, no pairs found, a broken or mismatched file.

    The message is one line naming the path and what was looked for, so a bad
    ``data.root=`` override fails before any training starts with something actionable.
    """


class DatasetWarning(UserWarning):
    """A dataset that can be used but is not complete (partial copy, missing occlusion maps).

    Issued once per dataset construction, never per sample, with the counts involved.
    Filter it with ``warnings.filterwarnings("ignore", category=DatasetWarning)``.
    """
