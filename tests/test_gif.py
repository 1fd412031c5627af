"""GIF timing: GIF stores whole centiseconds, yet a recording must play at the requested rate."""

from __future__ import annotations

import pytest

from cartpole_dqn.run.evaluation import gif_durations


@pytest.mark.parametrize("fps", [1, 7, 24, 30, 50])
def test_gif_frame_durations_average_the_requested_rate_in_centiseconds(fps: int) -> None:
    durations = gif_durations(301, fps)
    assert all(d % 10 == 0 and d >= 10 for d in durations)
    assert 1000 * len(durations) / sum(durations) == pytest.approx(fps, rel=0.01)
