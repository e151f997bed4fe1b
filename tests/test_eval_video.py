"""`dagger eval --video`: the results come first and stay, the video is a playable MP4 or a GIF at a readable size
with a caption (episode, seed, step, outcome), and a video that cannot be written is one clear line and no file."""

import json
from pathlib import Path

import av
import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from PIL import Image

from dagger.app.cli import main
from dagger.app.video import BAR_HEIGHT, WIDTH, Caption, captioned, enlarged, video_file
from dagger.checkpoint import write_checkpoint
from dagger.evaluation import EVAL_SEED_BASE
from tests.conftest import ROOT, point_config, run_dagger
from workers.launch import run_loop

FRAMES = 3 * (40 + 1 + 12)  # 3 episodes of the point task: 40 steps, the state they end in, half a second held
SIZE = (640, 480 + BAR_HEIGHT)  # the point task's 160x120 frame enlarged 4 times, under the caption bar


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A small trained point run (it succeeds), and the same checkpoint with its weights zeroed (it fails)."""
    root = tmp_path_factory.mktemp("runs")
    run_loop(point_config("eval.every_versions=0"), root / "good")
    payload = torch.load(next((root / "good" / "checkpoints").glob("v*.pt")), weights_only=True)
    payload.pop("format")
    payload["weights"]["params"] = [p * 0 for p in payload["weights"]["params"]]
    write_checkpoint(root / "bad" / "checkpoints", payload)
    return root / "good", root / "bad"


def evaluate(run: Path, video: Path, out: Path, capsys) -> tuple[int, str, str, dict | None]:
    """`dagger eval` of 4 episodes in this process: exit code, stdout, stderr and the eval.json written to `out`
    (None when none was)."""
    code = main(["eval", str(run), "--episodes", "4", "--video", str(video), "--out", str(out)])
    printed = capsys.readouterr()
    return code, printed.out, printed.err, json.loads(out.read_text()) if out.exists() else None


def mp4_frames(path: Path) -> tuple[av.VideoStream, np.ndarray]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream, np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])


def test_an_mp4_is_written_after_the_results_and_plays(runs, tmp_path):
    video = tmp_path / "clips" / "x.mp4"
    done = run_dagger("eval", str(runs[0]), "--episodes", "4", "--video", str(video),
                      "--out", str(tmp_path / "eval.json"), cwd=ROOT)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["episodes"] == 4 and result["seed_base"] == EVAL_SEED_BASE
    assert result["video"] == str(video) and result["video_frames"] == FRAMES and result["video_size"] == list(SIZE)
    assert done.stdout.index("success rate") < done.stdout.index(f"video {video}")  # results printed first
    stream, frames = mp4_frames(video)
    assert stream.codec_context.name == "h264" and stream.pix_fmt == "yuv420p"  # what players show
    assert frames.shape == (FRAMES, SIZE[1], SIZE[0], 3) and int(stream.base_rate or 0) == 25
    assert sorted(p.name for p in video.parent.iterdir()) == ["x.mp4"]  # no temporary file left


def test_a_gif_is_written_at_the_same_size(runs, tmp_path, capsys):
    code, out, err, result = evaluate(runs[0], tmp_path / "x.gif", tmp_path / "eval.json", capsys)
    assert code == 0 and result is not None, err
    assert result["video_frames"] == FRAMES and "success rate" in out
    with Image.open(tmp_path / "x.gif") as gif:
        durations = []
        for index in range(gif.n_frames):  # a GIF merges a frame repeated into one shown longer
            gif.seek(index)
            durations.append(gif.info["duration"])
        assert gif.size == SIZE and sum(durations) == FRAMES * 40


def badge(frame: np.ndarray) -> np.ndarray:
    """The mean colour of the caption bar's right end, where the outcome's badge is."""
    return frame[10:BAR_HEIGHT - 10, -40:-10].reshape(-1, 3).mean(axis=0)


def test_the_caption_tells_the_episode_step_and_outcome(runs, tmp_path, capsys):
    assert evaluate(runs[0], tmp_path / "good.mp4", tmp_path / "eval.json", capsys)[0] == 0
    code, _, err, result = evaluate(runs[1], tmp_path / "bad.mp4", tmp_path / "eval.json", capsys)
    assert code == 0 and result is not None and result["successes"] == 0, err
    good, bad = mp4_frames(tmp_path / "good.mp4")[1], mp4_frames(tmp_path / "bad.mp4")[1]
    bar = good[0, :BAR_HEIGHT]
    assert bar.std() > 20 and (bar.max(axis=2) > 200).sum() > 300  # text on it, not a plain strip
    r, g, _ = badge(good[5])
    assert g > r + 60  # success: green
    r, g, _ = badge(bad[5])
    assert r > g + 60  # failure: red
    assert np.abs(good[5, :BAR_HEIGHT].astype(int) - good[6, :BAR_HEIGHT]).max() > 100  # the step counts on
    second = 40 + 1 + 12
    assert np.abs(good[0, :BAR_HEIGHT, :120].astype(int) - good[second, :BAR_HEIGHT, :120]).max() > 100  # episode 2
    held = np.abs(good[second - 1, :BAR_HEIGHT].astype(int) - good[second - 2, :BAR_HEIGHT])
    assert held.max() < 40  # held at the end: the same caption (but for H.264's loss)


@pytest.mark.parametrize("where", ["a directory", "under a file"])
def test_a_video_that_cannot_be_written_keeps_the_results_and_says_why(runs, tmp_path, capsys, where):
    if where == "a directory":
        video = tmp_path / "x.mp4"
        video.mkdir()
    else:
        (tmp_path / "notes.txt").write_text("not a folder")
        video = tmp_path / "notes.txt" / "x.mp4"
    code, out, err, result = evaluate(runs[0], video, tmp_path / "eval.json", capsys)
    assert code == 2 and result is not None and result["episodes"] == 4 and "video" not in result
    assert "success rate" in out  # printed before the video was tried
    assert err.count("\n") == 1 and str(video) in err and "eval.json" in err
    assert ("directory" in err) if where == "a directory" else ("Not a directory" in err)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["eval.json", video.name if where == "a directory"
                                                                 else "notes.txt"])
    if where == "a directory":
        assert list(video.iterdir()) == []


def test_an_unknown_kind_of_video_is_refused_before_the_episodes_run(runs, tmp_path, capsys):
    code, out, err, result = evaluate(runs[0], tmp_path / "x.avi", tmp_path / "eval.json", capsys)
    assert code == 2 and result is None and out == ""
    assert err.count("\n") == 1 and "x.avi" in err and ".mp4 or .gif" in err


def test_a_failure_while_writing_leaves_no_file(tmp_path):
    frame = np.zeros((480, 640, 3), np.uint8)
    with pytest.raises(ValueError, match="frame 1 is 640x240"), video_file(tmp_path / "x.mp4", fps=25) as out:
        out.write(frame)
        out.write(frame[:240])
    with pytest.raises(RuntimeError, match="renderer"), video_file(tmp_path / "x.gif", fps=25) as out:
        out.write(frame)
        raise RuntimeError("the renderer died")
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 700), st.integers(1, 500))
def test_frames_are_enlarged_to_a_readable_even_size(width, height):
    frame = np.random.default_rng(width * height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    big = enlarged(frame)
    factor = big.shape[1] // width
    assert big.shape[1] >= WIDTH and big.shape[0] % 2 == 0 and big.shape[1] % 2 == 0
    assert np.array_equal(big[:factor * height:factor, :factor * width:factor], frame)  # every pixel, unblurred
    shown = captioned(big, Caption(1, EVAL_SEED_BASE, 0, 40, True))
    assert shown.shape == (big.shape[0] + BAR_HEIGHT, big.shape[1], 3)
