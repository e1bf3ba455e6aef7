"""The search command (``image-search``, ``python -m engines.search``): rclip's interface."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from engines.search import main
from engines.testing import make_gallery
from ui import cli

ROOT = Path(__file__).resolve().parents[1]


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def test_a_sentence_prints_k_lines_of_score_and_path_best_first_and_a_rerun_embeds_nothing(
    tiny_clip: str, gallery: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["a red square", "--data", str(gallery), "--model", tiny_clip, "--k", "5", "--no-progress"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    rows = [line.split("\t") for line in lines(out)]
    assert len(rows) == 5 and all(len(row) == 2 for row in rows)
    scores = [float(score) for score, _ in rows]
    assert scores == sorted(scores, reverse=True)
    assert all(Path(path).is_file() and Path(path).is_relative_to(gallery.resolve() / "train") for _, path in rows)
    assert "16 images indexed (16 new or changed" in err
    assert main(args) == 0
    again, err = capsys.readouterr()
    assert again == out and err == ""  # the index was up to date: nothing embedded, nothing said


def test_an_image_query_finds_itself_first_at_distance_0_with_the_pixel_engine(
    gallery: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    query = next((gallery / "train" / "red").glob("*.jpg"))
    assert main(["--image", str(query), "--data", str(gallery), "--engine", "pixel", "--metric", "l2",
                 "--k", "3", "--no-progress"]) == 0
    first = lines(capsys.readouterr().out)[0].split("\t")
    assert float(first[0]) == 0.0 and Path(first[1]) == query.resolve()


def test_rclip_syntax_json_paths_only_and_threshold(tiny_clip: str, gallery: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--data", str(gallery), "--model", tiny_clip, "--no-progress"]
    assert main(["red + 2:a square - blue", *base, "--json", "--k", "4"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["rank"] for row in rows] == [1, 2, 3, 4] and all(Path(row["path"]).is_file() for row in rows)
    threshold = (rows[1]["score"] + rows[2]["score"]) / 2
    assert main(["red + 2:a square - blue", *base, "--paths-only", "--threshold", str(threshold), "--k", "4"]) == 0
    assert lines(capsys.readouterr().out) == [row["path"] for row in rows[:2]]
    query = next((gallery / "test" / "red").iterdir())
    assert main(["at night", "--image", str(query), *base, "--k", "2"]) == 0  # image and sentence: one query
    assert len(lines(capsys.readouterr().out)) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give a sentence, --image PATH, or both"),
        (["  "], "Expected a sentence"),
        (["a dog +"], "Expected a term after '+'"),
        (["a dog", "--engine", "pixel"], "searches by image only"),
        (["--image", "no-such.jpg"], "no such image file"),
        (["a dog", "--metric", "hamming"], "hamming"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_prints_no_results(
    args: list[str], message: str, tiny_clip: str, gallery: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*args, "--data", str(gallery), "--model", tiny_clip, "--no-progress"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(lines(err)) == 1 and message in err and err.startswith("image-search: error:")


def test_a_missing_gallery_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["a dog", "--data", str(tmp_path / "nothing-here"), "--no-progress"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(lines(err)) == 1


def test_one_command_dispatches_search_index_and_evaluate(tiny_clip: str, gallery: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data", str(gallery), "--model", tiny_clip, "--no-progress"]
    assert cli.main(["index", *data, "--engine", "clip"]) == 0
    assert "Indexed 16 images" in capsys.readouterr().out
    assert cli.main(["a red square", *data, "--k", "1"]) == 0
    assert len(lines(capsys.readouterr().out)) == 1
    assert cli.main(["search", "index", *data, "--k", "1"]) == 0  # a sentence that is a command's name
    assert len(lines(capsys.readouterr().out)) == 1
    assert cli.main(["evaluate", "--data", str(gallery), "--engine", "pixel", "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)
    script = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["image-search"]
    assert script == "ui.cli:main"


def test_as_a_process_it_pipes_paths_even_of_names_that_are_not_utf8(tmp_path: Path) -> None:
    gallery = make_gallery(tmp_path / "g", per_class=1)
    odd = os.fsencode(gallery / "train" / "red") + b"/caf\xe9.png"
    os.rename(gallery / "train" / "red" / "red_0.jpg", odd)
    query = os.fsdecode(odd)
    done = subprocess.run(
        [sys.executable, "-m", "engines.search", "--image", query, "--data", str(gallery), "--engine", "pixel",
         "--metric", "l2", "--paths-only", "--k", "1"],
        cwd=ROOT, capture_output=True, timeout=120, env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stdout.rstrip(b"\n") == os.fsencode(os.path.realpath(query))
    assert b"images indexed" in done.stderr  # the progress and the summary go to stderr only


def test_a_name_with_a_line_break_never_prints_two_lines_and_null_gives_it_exactly(
    gallery: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trap = gallery / "train" / "red" / "a\n.bashrc\nb.jpg"  # `| xargs -d '\n' rm` would remove .bashrc
    os.rename(next((gallery / "train" / "red").glob("*.jpg")), trap)
    argv = ["--image", str(trap), "--data", str(gallery), "--engine", "pixel", "--metric", "l1", "--k", "3",
            "--no-progress"]
    assert main([*argv, "--paths-only"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 3 and not any(line == ".bashrc" or line.endswith("/.bashrc") for line in lines)
    assert lines[0].endswith("a\\x0a.bashrc\\x0ab.jpg") and "--null" in err
    # Positive control: --null gives every path exactly, NUL-terminated.
    assert main([*argv, "--paths-only", "--null"]) == 0
    out, _ = capsys.readouterr()
    assert out.split("\0")[0] == str(trap) and out.count("\0") == 3


def test_bad_flags_are_one_line_and_the_gallery_defaults_to_the_current_folder(
    gallery: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for argv, said in ((["--k", "0"], "expected 1 to"), (["--threshold", "abc"], "expected a number"),
                       (["--thresh", "0.5"], "unrecognized arguments: --thresh")):
        with pytest.raises(SystemExit) as stopped:
            main(["--image", "x.jpg", "--data", str(gallery), *argv])
        err = capsys.readouterr().err
        assert stopped.value.code == 2 and said in err and len(err.strip().splitlines()) == 1, err
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    assert main(["--image", str(notes), "--data", str(gallery), "--engine", "clip"]) == 2
    assert "is not an image" in capsys.readouterr().err  # refused before any model would load
    monkeypatch.chdir(gallery)  # like rclip: the current folder is the gallery
    query = str(next((gallery / "test" / "red").iterdir()))
    assert main(["--image", query, "--engine", "pixel", "--k", "2", "--no-progress", "--paths-only"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
