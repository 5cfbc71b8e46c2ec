"""A stand-in for ``picamera2.outputs``: where encoded frames go.

Mirrors picamera2's behaviour, written afresh for the tests:

* ``Output``: ``start()`` / ``stop()`` set ``recording``; ``outputframe(frame, keyframe,
  timestamp, packet, audio)`` is called by the encoder for every encoded frame.
* ``FileOutput(file)``: writes frames, from the first keyframe, to a path (opened "wb") or
  to an ``io.BufferedIOBase`` (``io.BytesIO`` included); anything else is refused. Setting
  ``fileoutput`` makes it wait for a keyframe again.
* ``CircularOutput(file=None, buffersize=150)``: keeps the last ``buffersize`` encoded frames
  whether recording or not. While recording with a file, each new frame pushes the oldest
  one out to the file, the first one written being the oldest keyframe in the ring, so the
  file runs ``buffersize`` frames behind the camera; ``stop()`` writes what the ring still
  holds, closes and stops recording.
"""

from __future__ import annotations

import collections
import io
import threading
from pathlib import Path

__all__ = ["CircularOutput", "FileOutput", "Output"]


class Output:
    def __init__(self, pts=None):
        self.recording = False
        self.ptsoutput = pts

    def start(self):
        self.recording = True

    def stop(self):
        self.recording = False

    def outputframe(self, frame, keyframe=True, timestamp=None, packet=None, audio=False):
        """Called by an encoder for every frame it makes."""

    def outputtimestamp(self, timestamp=None):
        pass

    def _add_stream(self, encoder_stream, codec_name, **kwargs):
        pass


class FileOutput(Output):
    def __init__(self, file=None, pts=None, split=None):
        super().__init__(pts=pts)
        self.fileoutput = file

    @property
    def fileoutput(self):
        return self._fileoutput

    @fileoutput.setter
    def fileoutput(self, file):
        self._firstframe = True
        self._needs_close = False
        if file is None:
            self._fileoutput = None
        elif isinstance(file, (str, Path)):
            self._fileoutput = open(file, "wb")
            self._needs_close = True
        elif isinstance(file, io.BufferedIOBase):
            self._fileoutput = file
        else:
            raise RuntimeError("Must pass io.BufferedIOBase")

    def outputframe(self, frame, keyframe=True, timestamp=None, packet=None, audio=False):
        if audio:
            raise RuntimeError("Fileoutput does not support audio")
        if self._fileoutput is None or not self.recording:
            return
        if self._firstframe:
            if not keyframe:
                return
            self._firstframe = False
        self._write(frame, timestamp)

    def stop(self):
        super().stop()
        self.close()

    def close(self):
        if self._needs_close:
            self._fileoutput.close()

    def _write(self, frame, timestamp=None):
        self._fileoutput.write(frame)
        self._fileoutput.flush()
        self.outputtimestamp(timestamp)


class CircularOutput(FileOutput):
    def __init__(self, file=None, pts=None, buffersize=30 * 5, outputtofile=True):
        super().__init__(file, pts=pts)
        self._lock = threading.Lock()
        self.buffersize = buffersize
        self.outputtofile = outputtofile

    @property
    def buffersize(self):
        return self._buffersize

    @buffersize.setter
    def buffersize(self, value):
        if not isinstance(value, int):
            raise RuntimeError("Buffer size must be integer")
        with self._lock:
            self._buffersize = value
            self._circular = collections.deque(maxlen=value)

    def outputframe(self, frame, keyframe=True, timestamp=None, packet=None, audio=False):
        if audio:
            raise RuntimeError("CircularOutput does not support audio")
        with self._lock:
            if self._buffersize == 0:
                return
            self._circular.append((frame, keyframe))
            if self._fileoutput is None or not self.recording or not self.outputtofile:
                return
            if self._firstframe:
                while self._circular:            # the oldest keyframe in the ring comes first
                    old, is_key = self._circular.popleft()
                    if is_key:
                        self._write(old, timestamp)
                        self._firstframe = False
                        break
            elif self._circular:
                self._write(self._circular.popleft()[0], timestamp)

    def stop(self):
        if not self.recording or self._fileoutput is None:
            return
        with self._lock:
            while self._circular:
                frame, keyframe = self._circular.popleft()
                if self._firstframe and not keyframe:
                    continue
                self._firstframe = False
                self._write(frame)
        self.recording = False
        self._firstframe = False
        self.close()
