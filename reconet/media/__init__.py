"""The package's one place that reads and writes images, videos and frame folders.

``reconet.image`` (beside this package) decodes and encodes single images; everything with
frames goes through here: inference, training callbacks, evaluation, optimize and the video
dataset all import it, none of them imports another package for I/O.

* :mod:`~reconet.media.frame`: the decoded :class:`Frame`, :class:`MediaError`, suffixes;
* :mod:`~reconet.media.sizes`: ``WxH`` text and :class:`SizeSpec` (sizes are (W, H) here, as
  they are written on a command line; configs and tensors use (H, W));
* :mod:`~reconet.media.sources`: video files, images, frame folders, webcams;
* :mod:`~reconet.media.writers`: video (exact timing, audio), image and folder writers;
* :mod:`~reconet.media.audio`: the source's audio track, copied or transcoded;
* :mod:`~reconet.media.destinations`: outputs that appear only when complete.
"""

from reconet.media.destinations import check_destination, check_not_input, commit_file, commit_folder
from reconet.media.frame import VIDEO_SUFFIXES, WEBCAM_PREFIX, Frame, MediaError, OutputError
from reconet.media.sizes import SizeSpec, parse_size_wh
from reconet.media.sources import (
    FolderSource,
    FrameSource,
    ImageSource,
    VideoSource,
    WebcamSource,
    is_webcam_spec,
    list_image_files,
    open_frames,
)
from reconet.media.writers import FolderWriter, FrameWriter, ImageWriter, VideoWriter, open_writer, output_kind

__all__ = [
    "VIDEO_SUFFIXES",
    "WEBCAM_PREFIX",
    "FolderSource",
    "FolderWriter",
    "Frame",
    "FrameSource",
    "FrameWriter",
    "ImageSource",
    "ImageWriter",
    "MediaError",
    "OutputError",
    "SizeSpec",
    "VideoSource",
    "VideoWriter",
    "WebcamSource",
    "check_destination",
    "check_not_input",
    "commit_file",
    "commit_folder",
    "is_webcam_spec",
    "list_image_files",
    "open_frames",
    "open_writer",
    "output_kind",
    "parse_size_wh",
]
