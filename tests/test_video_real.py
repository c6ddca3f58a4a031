"""Video on a real clip: ``vtest.avi`` from OpenCV's sample data (a fixed camera over a
walkway with people, 768×576, MS-MPEG-4 v3 in AVI at 10 fps), which Debian's ``opencv-doc``
package ships; ``scripts/test.sh`` takes it out of that package (``apt-get download``, no
root needed) into ``.cache/realclip/`` once, never committed. Without it these tests skip
with the reason.

The first frames are copied (packets, not re-encoded) into a short clip and cut by the real
model (the suite's shared session): the output keeps every frame and its time, has a real
cut-out in its alpha (people, not a blank), and the temporal step lowers the flicker on the
still parts of the scene (measured: 0.139 against 0.216 levels of 255, mean |Δα| between
consecutive frames where the picture did not change; the test asks for at most 0.85×).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cleancut import Remover

av = pytest.importorskip("av")

from cleancut.video import cut_frames, iter_frames, probe, remove_video  # noqa: E402

REAL_CLIP = Path(__file__).resolve().parents[1] / ".cache" / "realclip" / "vtest.avi"
FRAMES = 8

pytestmark = pytest.mark.skipif(
    not REAL_CLIP.is_file(),
    reason=f"{REAL_CLIP} is missing: scripts/test.sh takes it from Debian's opencv-doc package",
)


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real clip's first ``FRAMES`` frames, their packets copied as they are."""
    out = tmp_path_factory.mktemp("real") / "walkway.avi"
    with av.open(str(REAL_CLIP)) as src, av.open(str(out), "w", format="avi") as dst:
        stream = src.streams.video[0]
        copy = dst.add_stream_from_template(stream)
        n = 0
        for packet in src.demux(stream):
            if packet.dts is None:
                continue
            if n == FRAMES:
                break
            packet.stream = copy
            dst.mux(packet)
            n += 1
    return out


def test_a_real_clip_keeps_its_frames_and_times_and_gets_a_real_cut_out(
    short_clip: Path, remover: Remover, tmp_path: Path
) -> None:
    info = probe(short_clip)
    assert (info.width, info.height) == (768, 576)
    times = [f.time for f in iter_frames(short_clip)]
    assert times == pytest.approx([i / 10 for i in range(FRAMES)])
    result = remove_video(short_clip, tmp_path / "walkway.webm", remover=remover)
    assert result.frames == FRAMES
    with av.open(str(result.path)) as c:
        stream = c.streams.video[0]
        decoder = av.codec.CodecContext.create("libvpx-vp9", "r")  # it reads the alpha plane
        packets = [p for p in c.demux(stream) if p.size]
        got_times = sorted(float(p.pts * p.time_base) for p in packets)
        decoded = [f for p in packets for f in decoder.decode(p)] + list(decoder.decode(None))
        alphas = [f.to_ndarray(format="rgba")[..., 3] for f in decoded]
    assert len(alphas) == FRAMES and got_times == pytest.approx(times, abs=0.002)
    for alpha in alphas:  # people on a walkway: a small opaque part, a transparent rest
        opaque = float((alpha > 200).mean())
        assert 0.002 < opaque < 0.2 and float((alpha < 30).mean()) > 0.7


def test_the_temporal_step_steadies_a_real_still_camera(short_clip: Path, remover: Remover) -> None:
    pixels = [f.pixels for f in iter_frames(short_clip)]
    steady = [c.pixels[..., 3].astype(int) for c in cut_frames(iter(pixels), remover=remover)]
    plain = [c.pixels[..., 3].astype(int) for c in cut_frames(iter(pixels), remover=remover, smooth=False)]
    gray = [p.astype(int).mean(axis=2) for p in pixels]

    def flicker(alphas: list[np.ndarray]) -> float:
        steps = []
        for i in range(1, len(alphas)):
            still = np.abs(gray[i] - gray[i - 1]) < 3
            steps.append(np.abs(alphas[i] - alphas[i - 1])[still].mean())
        return float(np.mean(steps))

    assert flicker(plain) > 0.02  # the network does wobble on this clip
    assert flicker(steady) <= 0.85 * flicker(plain), (flicker(steady), flicker(plain))
    # where people walk, the step does not hold the old frame: the masks still follow them
    moving = np.abs(gray[-1] - gray[0]) > 40
    assert np.abs(steady[-1] - plain[-1])[moving].mean() < 20
