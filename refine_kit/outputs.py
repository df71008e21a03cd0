"""Writing a run's files to disk: one folder per topic plus a batch manifest.

Layout of a run folder::

    <root>/
        manifest.json                 # the batch: settings, counts, one line per topic
        <topic-folder>/
            report.md                 # the best draft, as Markdown
            report.html               # the same as a web page, under a header (score, summary)
            summary.md                # the short summary under a heading
            record.json               # everything known about the topic; written LAST

Two promises hold even if the process dies half-way (a pod evicted, a laptop closed):

* every file is either complete or absent, never half-written (`atomic_write_text`);
* a topic folder whose ``record.json`` says ``"succeeded"`` has all its files, because the
  record is written after them and an older record is removed before they are replaced.

Topic text comes from users, so folder names are derived defensively: whatever the topic
says, its folder is one harmless path component inside the run folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import unicodedata
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from refine_kit.models import Accounting, BatchResult, RefineResult, TopicOutcome
from refine_kit.report_page import render_html

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
SUMMARY_MD = "summary.md"
RECORD_JSON = "record.json"
MANIFEST_JSON = "manifest.json"

# The files a successful topic folder holds besides its record, in the order they are written.
TOPIC_FILES: tuple[str, ...] = (REPORT_MD, SUMMARY_MD, REPORT_HTML)

# --------------------------------------------------------------------------------------------
# Folder names
# --------------------------------------------------------------------------------------------
#
# Written with the standard library rather than `python-slugify` on purpose:
# * `python-slugify` is not a declared dependency of this project, and its transliteration
#   backend (`text-unidecode`) carries an Artistic/GPL licence we would rather not pull in;
# * it knows nothing of Windows reserved names or of collisions, so we would still have to
#   wrap it with the hash suffix and the length cap below;
# * its one real advantage, transliterating non-Latin scripts ("Москва" -> "moskva"), only
#   buys readability: the hash suffix already makes every name unique, and record.json and
#   the manifest carry the exact topic text.

_SLUG_MAX = 60  # characters of readable slug; the full name is at most 60 + 1 + 16 = 77
# Hex characters of sha256: 64 bits, so two topics sharing a folder would take billions of
# crafted attempts; `_topic_folder` still refuses a folder that holds another topic's record.
_HASH_LEN = 16
_FALLBACK_SLUG = "topic"  # for topics with nothing ASCII-readable (emoji, CJK, punctuation)

# Latin letters that NFKD does not decompose into ASCII; mapping them keeps e.g. German,
# Nordic and Polish topics readable instead of silently dropping letters.
_LATIN_EXTRAS = str.maketrans(
    {"ß": "ss", "æ": "ae", "ø": "o", "œ": "oe", "đ": "d", "ð": "d", "þ": "th", "ł": "l", "ı": "i"}
)
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def _topic_hash(topic: str) -> str:
    """A short, stable fingerprint of the exact topic text.

    ``surrogatepass`` lets even a str holding lone surrogates (which strict UTF-8 refuses)
    be hashed, so no topic can make this function raise.
    """
    digest = hashlib.sha256(topic.encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:_HASH_LEN]


def _slugify(topic: str) -> str:
    """Lower-case ASCII letters and digits joined by single hyphens, at most `_SLUG_MAX` long."""
    text = topic.lower().translate(_LATIN_EXTRAS)
    # NFKD splits "é" into "e" + accent and folds compatibility forms ("ﬁ" -> "fi",
    # full-width letters -> ASCII); whatever is still not ASCII is dropped.
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_SLUG.sub("-", ascii_text).strip("-")
    return slug[:_SLUG_MAX].rstrip("-")


def topic_folder_name(topic: str) -> str:
    """Return a folder name for `topic` that is safe on Linux, macOS and Windows.

    The name is ``<slug>-<hash>``: a readable lower-case ASCII slug (at most 60 characters,
    ``topic`` when nothing readable is left) and the first 16 hex digits of the sha256 of the
    exact topic. By construction it contains only ``[a-z0-9-]``, so it has no separators,
    no dots (so never ``.``, ``..`` or a leading dot), no control or shell characters, and
    no trailing space. Because it always ends in ``-<hash>`` it can never equal a reserved
    Windows device name (``CON``, ``NUL``, ``COM1``...). The hash also keeps apart topics
    that slugify alike ("AI/ML" and "AI ML", or "Rust" and "rust" on a case-insensitive
    file system). The same topic always gives the same name, on every machine.
    """
    slug = _slugify(topic) or _FALLBACK_SLUG
    return f"{slug}-{_topic_hash(topic)}"


# --------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    """Persist a rename by syncing its directory, where the platform allows it.

    Without this a power cut right after `os.replace` can lose the rename on some POSIX file
    systems. Windows cannot open directories, so there it is skipped; it is best effort.
    """
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` as UTF-8 so that the file is either complete or absent.

    The text goes to a hidden temp file in the same directory (same file system, so the
    final rename is atomic), is flushed and fsynced, then `os.replace`-d over `path`. A
    reader therefore sees the old file or the new one, never a torn mix, and a crash leaves
    at worst a stray temp file rather than a truncated report. On any failure the temp file
    is removed and the old `path`, if any, is left exactly as it was. Parent folders are
    created. The text is written byte for byte (no newline translation on Windows).
    """
    path = Path(path)
    # Encode first: text that cannot be UTF-8 fails here, before anything touches the disk.
    data = text.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp makes owner-only files; reports are meant to be read by others too.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        # BaseException too: a Ctrl-C mid-write must not leave temp files behind either.
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _json_default(value: Any) -> Any:
    """Serialise the few non-JSON types a settings dict plausibly holds; refuse the rest."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)  # sorted so the file is the same from run to run
    raise TypeError(f"cannot write {type(value).__name__} to JSON: {value!r}")


def _json_text(data: dict[str, Any]) -> str:
    """Pretty JSON that keeps non-ASCII readable, falling back to escapes when it must.

    A raw topic (as given to `write_failure_record`) may hold lone surrogates, which UTF-8
    cannot store; ``ensure_ascii`` escapes them as ``\\udXXX`` so the record is still written.
    """
    text = json.dumps(data, indent=2, ensure_ascii=False, default=_json_default)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(data, indent=2, ensure_ascii=True, default=_json_default)
    return text + "\n"


def _now_iso() -> str:
    """The current time in UTC as ISO 8601, to the second (e.g. 2025-01-31T12:00:00+00:00)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------------
# Topic folders and the manifest
# --------------------------------------------------------------------------------------------


def _with_final_newline(text: str) -> str:
    """Text files end in a newline so tools like `cat` and diffs behave."""
    return text if text.endswith("\n") else text + "\n"


def _one_line(text: str) -> str:
    """Collapse whitespace so a topic with line breaks cannot break out of a heading."""
    return " ".join(text.split())


class OutputFolderError(OSError):
    """A topic folder the kit will not write into: a link, or another topic's folder."""


def _topic_folder(root: Path, topic: str) -> Path:
    """The topic's folder under `root`, made if needed, after checking it is really its own.

    A symbolic link planted where the folder belongs is refused (writing through it could
    overwrite files anywhere), and so is a folder whose record names another topic.
    """
    folder = Path(root) / topic_folder_name(topic)
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise OutputFolderError(f"{folder} is not a plain folder (a link or a file); not writing")
    with contextlib.suppress(FileNotFoundError, ValueError):
        recorded = json.loads((folder / RECORD_JSON).read_text(encoding="utf-8")).get("topic")
        if recorded is not None and recorded != topic:
            raise OutputFolderError(f"{folder} belongs to another topic ({recorded!r})")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_topic_outputs(result: RefineResult, root: Path) -> Path:
    """Write one successful topic's four files and return its folder.

    Everything is rendered before anything is written, so a rendering or serialisation
    error leaves an existing folder untouched. The old record is then removed, the three
    content files replaced one by one (each atomically), and the new record written last:
    at every instant, a record saying "succeeded" vouches for the files beside it.
    """
    written_at = _now_iso()  # one instant, shown in report.html and kept in record.json
    summary_md = f"# Summary: {_one_line(result.topic)}\n\n{_with_final_newline(result.summary)}"
    contents = {
        REPORT_MD: _with_final_newline(result.report),
        SUMMARY_MD: summary_md,
        REPORT_HTML: render_html(result.report, result.topic, result=result, written_at=written_at),
    }
    record: dict[str, Any] = result.model_dump(mode="json")
    record["status"] = "succeeded"
    record["files"] = list(TOPIC_FILES)
    record["written_at"] = written_at
    record_text = _json_text(record)

    folder = _topic_folder(root, result.topic)
    # A stale record must not vouch for a half-replaced set of files if we die mid-way.
    (folder / RECORD_JSON).unlink(missing_ok=True)
    for name in TOPIC_FILES:
        atomic_write_text(folder / name, contents[name])
    atomic_write_text(folder / RECORD_JSON, record_text)
    return folder


def write_failure_record(
    topic: str, error: str, root: Path, spent: Accounting | None = None
) -> Path:
    """Record that `topic` failed for good, and return its folder.

    Only ``record.json`` is written (status "failed", the error). Files from an earlier
    successful run are left in place on purpose, but the record no longer vouches for them:
    readers should trust the record's status, not the presence of a report.
    """
    folder = _topic_folder(root, topic)
    record: dict[str, Any] = {
        "topic": topic,
        "status": "failed",
        "error": error,
        "accounting": spent.model_dump(mode="json") if spent else None,
        "files": [],
        "written_at": _now_iso(),
    }
    atomic_write_text(folder / RECORD_JSON, _json_text(record))
    return folder


def _relative_folder(outcome: TopicOutcome, root: Path) -> str | None:
    """Where a topic's files live, relative to the run folder, with forward slashes.

    Uses the outcome's own folder when set, which may be relative to the run folder, to the
    working directory (what `write_topic_outputs` returns for a relative root) or absolute.
    Without one, falls back to the folder this module would have written, if it exists.
    A folder outside the run folder is kept as given rather than turned into ``../..``.
    """
    if outcome.folder:
        folder = Path(outcome.folder)
        with contextlib.suppress(ValueError):
            return folder.relative_to(root).as_posix()
        with contextlib.suppress(ValueError, OSError):
            return folder.resolve().relative_to(root.resolve()).as_posix()
        return folder.as_posix()
    name = topic_folder_name(outcome.topic)
    return name if (root / name).is_dir() else None


def _manifest_line(outcome: TopicOutcome, root: Path) -> dict[str, Any]:
    """One topic's entry in the manifest; result figures are null when there is no result."""
    result = outcome.result
    # A failed topic's costs are known when its run counted them (not for a lost remote pod).
    known = outcome.accounting if result is not None or outcome.spent is not None else None
    return {
        "topic": outcome.topic,
        "status": outcome.status,
        "error": outcome.error,
        "folder": _relative_folder(outcome, root),
        "score": result.score if result else None,
        "revisions": len(result.iterations) - 1 if result else None,  # drafts after the first
        "stop_reason": result.stop_reason if result else None,
        "requests_sent": known.requests_sent if known else None,
        "answers_received": known.answers_received if known else None,
        # Tokens behind the report; a failed topic has none, so what it spent on the way.
        "total_tokens": (
            result.usage.total_tokens if result else known.tokens_used if known else None
        ),
        "from_cache": outcome.from_cache,
        "saved_steps": outcome.saved_steps,  # of a topic stopped by Ctrl-C: a rerun replays them
        # The same figures as record.json and the CLI totals, field for field.
        "accounting": known.model_dump(mode="json") if known else None,
    }


def write_manifest(
    outcomes: list[TopicOutcome],
    root: Path,
    *,
    seconds: float,
    max_concurrency: int,
    settings: dict[str, Any],
) -> Path:
    """Write ``root/manifest.json`` describing the whole batch, atomically, and return its path.

    The manifest is the run's index: what was asked (settings), how it went (counts, wall
    time, concurrency) and where each topic's files are. `settings` is written as given, so
    callers must leave secrets such as API keys out of it.
    """
    root = Path(root)
    counts = {"topics": len(outcomes), "succeeded": 0, "failed": 0}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    manifest: dict[str, Any] = {
        "created_at": _now_iso(),
        "settings": settings,
        "counts": counts,  # "interrupted" too, when the batch was stopped
        "seconds": round(seconds, 3),
        "max_concurrency": max_concurrency,
        "topics": [_manifest_line(o, root) for o in outcomes],
    }
    path = root / MANIFEST_JSON
    atomic_write_text(path, _json_text(manifest))
    return path


def read_record(folder: Path) -> dict[str, Any]:
    """Load a topic folder's ``record.json`` (for tests, notebooks and resumed runs)."""
    record: dict[str, Any] = json.loads((Path(folder) / RECORD_JSON).read_text(encoding="utf-8"))
    return record


def read_batch(root: Path) -> BatchResult:
    """A batch as its manifest and records describe it, read back from the run folder."""
    root = Path(root)
    manifest = json.loads((root / MANIFEST_JSON).read_text(encoding="utf-8"))
    outcomes = []
    for line in manifest["topics"]:
        folder = root / line["folder"] if line["folder"] else None
        result = None
        if line["status"] == "succeeded" and folder is not None:
            result = RefineResult.model_validate(read_record(folder))
        spent = line.get("accounting")
        outcomes.append(
            TopicOutcome(
                topic=line["topic"],
                status=line["status"],
                error=line["error"],
                result=result,
                folder=str(folder) if folder else None,
                from_cache=line["from_cache"],
                spent=Accounting.model_validate(spent) if spent and result is None else None,
                saved_steps=line.get("saved_steps", 0),
            )
        )
    return BatchResult(
        outcomes=outcomes,
        output_dir=str(root),
        manifest=str(root / MANIFEST_JSON),
        seconds=manifest["seconds"],
        max_concurrency=manifest["max_concurrency"],
        settings=manifest["settings"],
    )


def write_batch(batch: BatchResult, root: Path) -> BatchResult:
    """Write a finished batch's files on this machine: what a remote run's client does.

    Tasks on a cluster write to their own pods' disks, which the user never sees; the
    results travel back in the run's outputs and land here, in the same layout as a local
    run's.
    """
    root = Path(root)
    outcomes = []
    for outcome in batch.outcomes:
        if outcome.result is not None:
            folder = write_topic_outputs(outcome.result, root)
        else:
            error = outcome.error or "failed"
            folder = write_failure_record(outcome.topic, error, root, outcome.spent)
        outcomes.append(outcome.model_copy(update={"folder": str(folder)}))
    manifest = write_manifest(
        outcomes,
        root,
        seconds=batch.seconds,
        max_concurrency=batch.max_concurrency,
        settings=batch.settings,
    )
    return batch.model_copy(
        update={"outcomes": outcomes, "output_dir": str(root), "manifest": str(manifest)}
    )
