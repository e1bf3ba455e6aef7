from __future__ import annotations

import json
from pathlib import Path

import pytest

from engines import create_engine
from engines.evaluate import average_precision, evaluate, main, precision_at


def test_average_precision_by_hand() -> None:
    # relevant at ranks 1, 3 and 6 of 3 relevant: (1/1 + 2/3 + 3/6) / 3
    ranking = [True, False, True, False, False, True]
    assert average_precision(ranking, 3) == pytest.approx((1 + 2 / 3 + 0.5) / 3)
    assert precision_at(ranking, 1) == 1.0
    assert precision_at(ranking, 5) == pytest.approx(2 / 5)
    assert precision_at([True], 10) == pytest.approx(0.1)
    assert average_precision([False, False], 0) == 0.0


def test_evaluation_on_a_hand_checked_gallery(tmp_path: Path) -> None:
    from PIL import Image

    # Two classes, pure colours: every query's class mates rank first, so all is perfect
    # at k=1 and P@4 = 2/4 (2 of 4 database images share the query's class).
    for split, names in (("train", ["a", "b"]), ("test", ["q"])):
        for label, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for n, name in enumerate(names):
                Image.new("RGB", (8, 8), tuple(max(0, c - 10 * n) for c in colour)).save(folder / f"{name}.png")
    rows = evaluate(
        create_engine("pixel"), str(tmp_path / "train"), str(tmp_path / "test"),
        metrics=["l2"], ks=[1, 4], progress=False,
    )
    (row,) = rows
    assert row.queries == 2 and row.precision == {1: 1.0, 4: 0.5} and row.mean_ap == 1.0


def test_evaluate_cli_prints_json(gallery: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data", str(gallery), "--engine", "pixel", "--metric", "l1,cosine", "--k", "1,3", "--json", "--no-progress"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["metric"] for r in rows] == ["l1", "cosine"]
    assert set(rows[0]["precision"]) == {"1", "3"} and 0 <= rows[0]["mean_ap"] <= 1


def test_evaluate_cli_reports_errors_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data", str(tmp_path / "missing"), "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_pixel_figures_on_aio_match_the_reference(aio: Path) -> None:
    # SOURCE.md: raw 32x32 RGB pixels, L2: P@1 0.100, P@10 0.052, mAP 0.070
    (row,) = evaluate(create_engine("pixel"), str(aio / "train"), str(aio / "test"), metrics=["l2"], ks=[1, 10], progress=False)
    assert row.precision[1] == pytest.approx(0.100, abs=0.002)
    assert row.precision[10] == pytest.approx(0.052, abs=0.002)
    assert row.mean_ap == pytest.approx(0.070, abs=0.002)


def test_each_query_is_embedded_once_whatever_the_number_of_metrics(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from engines import create_engine
    from engines.evaluate import evaluate
    from engines.testing import make_gallery

    gallery = make_gallery(tmp_path / "g", per_class=3)
    engine = create_engine("pixel", cache=False)
    calls: list[int] = []
    real = engine.query_vector

    def counted(query):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(query)

    monkeypatch.setattr(engine, "query_vector", counted)
    queries = engines_load(gallery)["test"]
    rows = evaluate(engine, engines_load(gallery)["train"], queries, metrics=["l1", "l2", "cosine", "correlation"],
                    ks=(1,), progress=False)
    assert len(rows) == 4 and len(calls) == len(queries)  # one embedding a query, not one a metric


def engines_load(gallery: Path):  # type: ignore[no-untyped-def]
    from engines import load_gallery

    return load_gallery(str(gallery))
