"""Tests for refine_kit.outputs: safe folder names, atomic writes, HTML, records, manifest."""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sample_result import REPORT, make_result

from refine_kit import outputs
from refine_kit.models import RefineResult, TopicOutcome
from refine_kit.outputs import (
    atomic_write_text,
    read_record,
    render_html,
    topic_folder_name,
    write_failure_record,
    write_manifest,
    write_topic_outputs,
)

WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {
    f"{p}{i}" for p in ("COM", "LPT") for i in range(10)
}


def listing(folder: Path) -> set[str]:
    """Every entry in a folder, hidden temp files included."""
    return {p.name for p in folder.iterdir()}


# --------------------------------------------------------------------------------------------
# topic_folder_name
# --------------------------------------------------------------------------------------------

NASTY_TOPICS = [
    "Künstliche Intelligenz: Chancen & Risiken",
    "Straße, Øresund, Łódź",
    "Москва и Санкт-Петербург",
    "東京の歴史",
    "../../etc/passwd",
    "a/b\\c",
    ".",
    "..",
    "...",
    ".hidden",
    "CON",
    "con",
    "NUL",
    "COM1",
    "LPT9.txt",
    "",
    "   ",
    "🚀🔥🎉",
    "?!*<>|:\"'",
    "x" * 5000,
    "word " * 1000,
    "nul\x00byte",
    "tab\there\nnewline\r\x1b[31mred\x7f",
    "trailing dot.",
    "trailing space ",
    "\ud800 lone surrogate",
]


@pytest.mark.parametrize("topic", NASTY_TOPICS, ids=range(len(NASTY_TOPICS)))
def test_folder_name_is_safe(topic: str, tmp_path: Path) -> None:
    name = topic_folder_name(topic)

    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*-[0-9a-f]{16}", name), name
    assert 0 < len(name) <= 80
    assert not name.startswith(".")
    assert name not in {".", ".."}
    assert name.split(".")[0].upper() not in WINDOWS_RESERVED
    assert Path(name).name == name and len(Path(name).parts) == 1

    folder = tmp_path / name
    folder.mkdir()
    assert folder.resolve().parent == tmp_path.resolve()


def test_folder_name_keeps_latin_letters_readable() -> None:
    assert topic_folder_name("Künstliche Intelligenz").startswith("kunstliche-intelligenz-")
    assert topic_folder_name("Straße, Øresund, Łódź").startswith("strasse-oresund-lodz-")
    assert topic_folder_name("Ｆｕｌｌ ｗｉｄｔｈ").startswith("full-width-")


def test_folder_name_falls_back_when_nothing_is_readable() -> None:
    for topic in ["", "🚀🔥🎉", "東京の歴史", "...", "?!*"]:
        assert topic_folder_name(topic).startswith("topic-")


def test_folder_name_caps_the_slug() -> None:
    name = topic_folder_name("x" * 5000)
    slug, digest = name.rsplit("-", 1)
    assert slug == "x" * 60 and len(digest) == 16


def test_folder_names_do_not_collide() -> None:
    variants = ["AI/ML", "AI ML", "ai ml", "AI-ML", "ai/ml", "AI  ML", "AI ML ", "AI\\ML"]
    names = [topic_folder_name(t) for t in variants]
    assert len(set(names)) == len(variants)
    # Case-insensitive file systems (macOS, Windows) must keep them apart too.
    assert len({n.lower() for n in names}) == len(variants)
    assert all(n.startswith("ai-ml-") for n in names)


def test_folder_name_is_deterministic() -> None:
    topic = "The future of grid-scale batteries"
    assert topic_folder_name(topic) == topic_folder_name(topic)
    # The suffix is the documented sha256 prefix, so names are stable across machines.
    digest = hashlib.sha256(topic.encode()).hexdigest()[:16]
    assert topic_folder_name(topic) == f"the-future-of-grid-scale-batteries-{digest}"


# --------------------------------------------------------------------------------------------
# atomic_write_text
# --------------------------------------------------------------------------------------------


def test_atomic_write_creates_parents_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "file.txt"
    atomic_write_text(target, "héllo\r\nworld\n")
    assert target.read_bytes() == "héllo\r\nworld\n".encode()
    assert listing(target.parent) == {"file.txt"}

    atomic_write_text(target, "second")
    assert target.read_text(encoding="utf-8") == "second"
    assert listing(target.parent) == {"file.txt"}


def test_atomic_write_keeps_old_content_when_replace_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "file.txt"
    atomic_write_text(target, "old")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(outputs.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        atomic_write_text(target, "new")

    assert target.read_text(encoding="utf-8") == "old"
    assert listing(tmp_path) == {"file.txt"}


def test_atomic_write_cleans_up_when_the_write_itself_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "file.txt"
    atomic_write_text(target, "old")

    def broken_fsync(fd: int) -> None:
        raise OSError("fsync failed")

    monkeypatch.setattr(outputs.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="fsync failed"):
        atomic_write_text(target, "new")

    assert target.read_text(encoding="utf-8") == "old"
    assert listing(tmp_path) == {"file.txt"}


def test_atomic_write_refuses_unencodable_text_before_touching_disk(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    atomic_write_text(target, "old")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(target, "bad \ud800")
    assert target.read_text(encoding="utf-8") == "old"
    assert listing(tmp_path) == {"file.txt"}


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_atomic_write_makes_readable_files(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    atomic_write_text(target, "x")
    assert target.stat().st_mode & 0o777 == 0o644


# --------------------------------------------------------------------------------------------
# render_html
# --------------------------------------------------------------------------------------------


def test_html_is_a_standalone_page() -> None:
    page = render_html(REPORT, title='Heat <pumps> & "more"')
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in page
    assert "<title>Heat &lt;pumps&gt; &amp; &quot;more&quot;</title>" in page
    assert "<style>" in page and "</html>" in page
    assert "<link" not in page and "<script src" not in page  # nothing fetched from outside


def test_html_renders_markdown() -> None:
    page = render_html(REPORT, title="t")
    assert "<h1>Heat Pumps in Cold Climates</h1>" in page
    assert "<h2>How they work</h2>" in page
    assert "<li>A refrigerant loop</li>" in page
    assert "<strong>now</strong>" in page
    assert "<table>" in page and "<th>Climate</th>" in page and "<td>2.5</td>" in page


def test_html_escapes_raw_html_and_bad_links() -> None:
    nasty = (
        '<script>alert("x")</script>\n\n'
        'Inline <img src=x onerror="alert(1)"> here.\n\n'
        "[click](javascript:alert(1))\n"
    )
    page = render_html(nasty, title="</title><script>alert(1)</script>")
    assert "<script" not in page
    assert "<img" not in page
    assert "&lt;script&gt;" in page
    assert 'href="javascript:' not in page


CSP = (
    '<meta http-equiv="Content-Security-Policy" '
    "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
)
HOSTILE = (
    "# Report\n\n<script>alert(1)</script>\n\n"
    "Look: <img src=http://evil.example/track.png> and ![chart](http://evil.example/chart.png).\n\n"
    '<img src="https://evil.example/a.png">\n\n<iframe src="http://evil.example"></iframe>\n'
)


def test_html_loads_nothing_from_outside() -> None:
    page = render_html(REPORT, title="t")
    # The policy comes before anything it governs: right after the charset.
    assert page.index(CSP) == page.index('<meta charset="utf-8">') + len('<meta charset="utf-8">\n')
    assert page.count(CSP) == 1


def test_html_escapes_scripts_and_remote_images_from_a_hostile_report() -> None:
    result = make_result(
        report=HOSTILE,
        summary="Fine. <script>alert(2)</script> ![x](http://evil.example/s.png)",
        topic="<b>Bold</b> topic",
        model='<img src="http://evil.example/m.png">',
    )
    page = render_html(result.report, result.topic, result=result, written_at="2025-01-31T12:00")
    assert "<script" not in page and "<img" not in page and "<iframe" not in page
    assert page.count("&lt;script&gt;") == 2  # shown as text, in the report and the summary
    assert "&lt;img src=http://evil.example/track.png&gt;" in page
    assert not re.search(r"<[a-z]+[^>]*\ssrc=", page), "no element may load a source"
    assert "<b>" not in page and "&lt;b&gt;Bold&lt;/b&gt; topic" in page


def test_html_header_shows_topic_score_model_date_and_summary(tmp_path: Path) -> None:
    result = make_result(endpoint="https://user:secret@llm.example/v1", backend="openai")
    folder = write_topic_outputs(result, tmp_path)
    page = (folder / "report.html").read_text(encoding="utf-8")
    written = read_record(folder)["written_at"]
    header = page.split('<header class="run">', 1)[1].split("</header>", 1)[0]
    assert "<dd>Heat pumps in cold climates</dd>" in header
    assert "<dd>8/10, stopped at threshold (8)</dd>" in header
    assert "offline-echo, openai back-end, https://***@llm.example/v1" in header
    assert "secret" not in page
    assert f'<time datetime="{written}">{written}</time> (UTC)' in header
    assert datetime.fromisoformat(written).utcoffset() == timedelta(0)
    assert "Executive summary" in header
    assert "<p>Heat pumps now work well even in cold climates.</p>" in header
    # The report follows in its own article, after the header.
    article = page.split('<article class="report">', 1)[1].split("</article>", 1)[0]
    assert "<h1>Heat Pumps in Cold Climates</h1>" in article and "Executive" not in article
    assert page.index("</header>") < page.index('<article class="report">')


def test_html_header_says_when_the_iteration_limit_stopped_the_run() -> None:
    result = make_result(score=6, stop_reason="max_iterations", endpoint="offline")
    page = render_html(result.report, result.topic, result=result, written_at="2025-01-31")
    assert "<dd>6/10, stopped at max iterations (3)</dd>" in page
    assert "offline-echo, offline back-end (a deterministic stand-in, not an LLM)" in page


# --------------------------------------------------------------------------------------------
# write_topic_outputs / write_failure_record / read_record
# --------------------------------------------------------------------------------------------


def test_write_topic_outputs_writes_all_four_files(tmp_path: Path) -> None:
    result = make_result()
    folder = write_topic_outputs(result, tmp_path)

    assert folder == tmp_path / topic_folder_name(result.topic)
    assert listing(folder) == {"report.md", "report.html", "summary.md", "record.json"}
    assert (folder / "report.md").read_text(encoding="utf-8") == REPORT
    assert (folder / "summary.md").read_text(encoding="utf-8") == (
        "# Summary: Heat pumps in cold climates\n\n"
        "Heat pumps now work well even in cold climates.\n"
    )
    record = read_record(folder)
    assert (folder / "report.html").read_text(encoding="utf-8") == render_html(
        REPORT, title=result.topic, result=result, written_at=record["written_at"]
    )
    assert record["status"] == "succeeded"
    assert set(record["files"]) == {"report.md", "report.html", "summary.md"}
    assert RefineResult.model_validate(record) == result  # the record round-trips
    assert record["usage"]["total_tokens"] == 1500
    datetime.fromisoformat(record["written_at"])


def test_record_is_written_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    real_write = outputs.atomic_write_text

    def spy(path: Path, text: str) -> None:
        order.append(Path(path).name)
        real_write(path, text)

    monkeypatch.setattr(outputs, "atomic_write_text", spy)
    write_topic_outputs(make_result(), tmp_path)
    assert order[-1] == "record.json"
    assert sorted(order) == ["record.json", "report.html", "report.md", "summary.md"]


def test_summary_heading_stays_on_one_line(tmp_path: Path) -> None:
    folder = write_topic_outputs(make_result(topic="Two\nlines\tand  tabs"), tmp_path)
    first_line = (folder / "summary.md").read_text(encoding="utf-8").splitlines()[0]
    assert first_line == "# Summary: Two lines and tabs"


def test_rewrite_replaces_files(tmp_path: Path) -> None:
    write_topic_outputs(make_result(), tmp_path)
    folder = write_topic_outputs(make_result(report="# New\n\nBetter.", score=9), tmp_path)
    assert (folder / "report.md").read_text(encoding="utf-8") == "# New\n\nBetter.\n"
    assert read_record(folder)["score"] == 9
    assert listing(folder) == {"report.md", "report.html", "summary.md", "record.json"}


def test_failed_serialisation_leaves_existing_folder_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_topic_outputs(make_result(), tmp_path)
    before = {name: (folder / name).read_bytes() for name in listing(folder)}

    def broken_dumps(*args: object, **kwargs: object) -> str:
        raise TypeError("not serialisable")

    monkeypatch.setattr(outputs.json, "dumps", broken_dumps)
    with pytest.raises(TypeError):
        write_topic_outputs(make_result(report="# Replacement"), tmp_path)

    after = {name: (folder / name).read_bytes() for name in listing(folder)}
    assert after == before


def test_crash_mid_rewrite_leaves_no_vouching_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_topic_outputs(make_result(), tmp_path)
    real_write = outputs.atomic_write_text

    def dies_on_html(path: Path, text: str) -> None:
        if Path(path).name == "report.html":
            raise OSError("killed")
        real_write(path, text)

    monkeypatch.setattr(outputs, "atomic_write_text", dies_on_html)
    with pytest.raises(OSError):
        write_topic_outputs(make_result(report="# Half"), tmp_path)

    # The new report.md landed but report.html did not: no record may claim success.
    assert not (folder / "record.json").exists()
    assert not any(name.endswith(".tmp") for name in listing(folder))


def test_failure_record(tmp_path: Path) -> None:
    folder = write_failure_record(
        "Quantum gravity", "RuntimeError: gave up after 3 tries", tmp_path
    )
    assert folder == tmp_path / topic_folder_name("Quantum gravity")
    assert listing(folder) == {"record.json"}
    record = read_record(folder)
    assert record["status"] == "failed"
    assert record["topic"] == "Quantum gravity"
    assert record["error"] == "RuntimeError: gave up after 3 tries"


def test_failure_record_over_an_old_success_keeps_files(tmp_path: Path) -> None:
    result = make_result()
    write_topic_outputs(result, tmp_path)
    folder = write_failure_record(result.topic, "boom", tmp_path)
    assert read_record(folder)["status"] == "failed"
    assert (folder / "report.md").exists()


def test_failure_record_survives_a_lone_surrogate(tmp_path: Path) -> None:
    folder = write_failure_record("bad \ud800 topic", "boom", tmp_path)
    assert read_record(folder)["topic"] == "bad \ud800 topic"


def test_unicode_stays_readable_in_record(tmp_path: Path) -> None:
    folder = write_topic_outputs(make_result(topic="Über Straßen"), tmp_path)
    assert '"topic": "Über Straßen"' in (folder / "record.json").read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------
# write_manifest
# --------------------------------------------------------------------------------------------


def test_manifest(tmp_path: Path) -> None:
    ok = make_result(topic="Heat pumps")
    cached = make_result(topic="Batteries", score=9, stop_reason="max_iterations")
    ok_folder = write_topic_outputs(ok, tmp_path)
    cached_folder = write_topic_outputs(cached, tmp_path)
    failed_folder = write_failure_record("Fusion", "TimeoutError", tmp_path)
    outcomes = [
        TopicOutcome(topic="Heat pumps", status="succeeded", result=ok, folder=str(ok_folder)),
        TopicOutcome(
            topic="Batteries",
            status="succeeded",
            result=cached,
            folder=str(cached_folder.resolve()),
            from_cache=True,
        ),
        TopicOutcome(topic="Fusion", status="failed", error="TimeoutError"),
    ]
    settings = {"model": "offline-echo", "quality_threshold": 8, "out": tmp_path / "x"}

    path = write_manifest(
        outcomes, tmp_path, seconds=12.34567, max_concurrency=4, settings=settings
    )

    assert path == tmp_path / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    assert manifest["counts"] == {"topics": 3, "succeeded": 2, "failed": 1}
    assert manifest["seconds"] == pytest.approx(12.346)
    assert manifest["max_concurrency"] == 4
    assert manifest["settings"] == {
        "model": "offline-echo",
        "quality_threshold": 8,
        "out": (tmp_path / "x").as_posix(),
    }
    assert datetime.fromisoformat(manifest["created_at"]).utcoffset().total_seconds() == 0

    heat, batteries, fusion = manifest["topics"]
    assert heat == {
        "topic": "Heat pumps",
        "status": "succeeded",
        "error": None,
        "folder": ok_folder.name,
        "score": 8,
        "revisions": 1,
        "stop_reason": "threshold",
        "requests_sent": 5,
        "answers_received": 0,
        "total_tokens": 1500,
        "from_cache": False,
        "saved_steps": 0,
        "accounting": ok.accounting.model_dump(mode="json"),
    }
    assert batteries["folder"] == cached_folder.name
    assert batteries["from_cache"] is True
    assert batteries["stop_reason"] == "max_iterations"
    assert fusion["status"] == "failed"
    assert fusion["error"] == "TimeoutError"
    assert fusion["folder"] == failed_folder.name  # found on disk though the outcome had none
    assert fusion["score"] is None and fusion["requests_sent"] is None
    assert fusion["accounting"] is None and fusion["total_tokens"] is None  # not counted: lost
    assert listing(tmp_path) == {ok_folder.name, cached_folder.name, failed_folder.name} | {
        "manifest.json"
    }


def test_manifest_folder_is_null_when_nothing_was_written(tmp_path: Path) -> None:
    outcomes = [TopicOutcome(topic="Never ran", status="failed", error="cancelled")]
    path = write_manifest(outcomes, tmp_path, seconds=0.0, max_concurrency=1, settings={})
    assert json.loads(path.read_text(encoding="utf-8"))["topics"][0]["folder"] is None


def test_manifest_refuses_unserialisable_settings_and_keeps_old(tmp_path: Path) -> None:
    path = write_manifest([], tmp_path, seconds=1.0, max_concurrency=1, settings={"a": 1})
    before = path.read_bytes()
    with pytest.raises(TypeError):
        write_manifest([], tmp_path, seconds=1.0, max_concurrency=1, settings={"a": object()})
    assert path.read_bytes() == before
    assert listing(tmp_path) == {"manifest.json"}


def test_a_planted_link_or_another_topics_folder_is_never_written_through(tmp_path: Path) -> None:
    result = make_result("Heat pumps")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "run"
    root.mkdir()
    (root / topic_folder_name("Heat pumps")).symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OSError, match="not a plain folder"):
        write_topic_outputs(result, root)
    assert list(elsewhere.iterdir()) == []

    # A folder whose record names another topic (a hash collision, a hand-made folder).
    other = tmp_path / "other"
    folder = other / topic_folder_name("Heat pumps")
    folder.mkdir(parents=True)
    (folder / "record.json").write_text('{"topic": "Something else"}')
    with pytest.raises(OSError, match="belongs to another topic"):
        write_topic_outputs(result, other)
    with pytest.raises(OSError, match="belongs to another topic"):
        write_failure_record("Heat pumps", "boom", other)
