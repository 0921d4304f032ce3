from __future__ import annotations

import wave

import numpy as np

from lessonforge.tools.media import aactrack


def _tone(path, seconds, freq, rate=24000):
    t = np.arange(int(seconds * rate)) / rate
    x = (6000 * np.sin(2 * np.pi * freq * t)).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(x.tobytes())
    return path


def _onsets(x, rate=24000, threshold=1500):
    loud = np.abs(x.astype(float)) > threshold
    edges = np.flatnonzero(loud[1:] & ~loud[:-1]) + 1
    out, last = [], None
    for e in edges:
        if last is None or e - last > rate * 0.25:  # a new sound after a quarter second of quiet
            out.append(e)
        last = e
    return [e / rate for e in out]


def test_pieces_land_at_their_slides_and_the_track_has_the_video_length(tmp_path):
    specs = [(2.3, 300), (1.7, 500), (3.1, 700)]
    pieces = []
    for k, (sec, freq) in enumerate(specs):
        wav = _tone(tmp_path / f"{k}.wav", sec, freq)
        out = tmp_path / f"{k}.aac"
        pieces.append((out, aactrack.encode_piece(wav, out)))
    starts = [0.0, 3.0417, 5.5833]  # slides on the 24 fps grid, not on AAC frames
    total = 9.2083
    placed = aactrack.build_track(pieces, starts, total, tmp_path / "track.aac")
    assert all(abs(p - s) <= 1024 / 24000 / 2 + 1e-9 for p, s in zip(placed, starts))
    x = aactrack.decode(tmp_path / "track.aac")
    assert abs(len(x) / 24000 - total) <= 0.03
    onsets = _onsets(x)
    assert len(onsets) == 3
    assert all(abs(o - s) <= 0.03 for o, s in zip(onsets, starts))


def test_a_piece_depends_only_on_its_own_narration(tmp_path):
    wav = _tone(tmp_path / "a.wav", 1.0, 440)
    aactrack.encode_piece(wav, tmp_path / "1.aac")
    aactrack.encode_piece(wav, tmp_path / "2.aac")
    assert (tmp_path / "1.aac").read_bytes() == (tmp_path / "2.aac").read_bytes()
