"""The review application in a real browser, over a copy of the linked sample.

`linkage serve` runs in its own process on a free port; Debian's chromium, headless, is
driven by playwright (pointed at the system executable: nothing is downloaded). The story:
a reviewer signs in (after a wrong password), works the queue and an item, decides "same
person" on a pair the model left apart and "different people" on a merged pair; the next
night (the real nightly flow) links the first and splits the second, with id history, and
the night after keeps them so. A reviewer whose role leaves police out sees no police
record anywhere. The queue and item screenshots in the README are taken here.
"""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import duckdb
import pytest
from typer.testing import CliRunner

from linkage.cli import app as cli
from linkage.config import SourceConfig, load_project
from linkage.explain import _population_linker, _score_pair
from linkage.review_app.accounts import Reviewer
from linkage.review_app.context import ReviewContext
from linkage.review_app.evidence import pair_evidence
from linkage.review_app.queue import QueueFilters, QueueItem, queue_page
from tests.conftest import NIGHTS, REPO, SAMPLE_DIR, read_table, sample_project

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path(
    os.environ.get("LINKAGE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
)
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no chromium at {CHROMIUM}: set LINKAGE_CHROMIUM"
)

PASSWORD = "a long test password"
ROLES = """
review:
  roles:
    all: [education, health, police, socialwork]
    care: [education, health, socialwork]
"""
LAST = date.fromisoformat(NIGHTS[-1])
NIGHT_4, NIGHT_5 = (LAST + timedelta(days=1)).isoformat(), (LAST + timedelta(days=2)).isoformat()
# The README's screenshots, refreshed with LINKAGE_SCREENSHOTS=1 (else into a scratch dir,
# so a test run leaves the working tree as it was)
DOCS = (
    REPO / "docs"
    if os.environ.get("LINKAGE_SCREENSHOTS")
    else Path(tempfile.mkdtemp(prefix="review-screenshots-"))
)


@dataclass
class Served:
    config: Path
    warehouse: Path
    landing: Path
    url: str


@pytest.fixture(scope="module")
def served(linked_sample, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`linkage serve` over a copy of the linked sample, whose landing area holds two more
    nights (copies of the last), with reviewers ana (every agency) and cara (no police)."""
    root = tmp_path_factory.mktemp("review_app")
    landing = root / "landing"
    for night in (NIGHT_4, NIGHT_5):
        shutil.copytree(SAMPLE_DIR / "landing" / NIGHTS[-1], landing / night)
    config = sample_project(root, "w")
    text = config.read_text().replace(str(SAMPLE_DIR / "landing"), str(landing))
    config.write_text(text + ROLES)
    warehouse = root / "w" / "linkage.duckdb"
    (root / "w" / "models").mkdir(parents=True)
    shutil.copy(linked_sample.warehouse, warehouse)
    wal = linked_sample.warehouse.with_name(linked_sample.warehouse.name + ".wal")
    if wal.exists():
        shutil.copy(wal, warehouse.with_name(wal.name))
    shutil.copy(linked_sample.model_path, root / "w" / "models")
    # values as sent are read from the archived files
    shutil.copytree(linked_sample.warehouse.parent / "archive", root / "w" / "archive")
    for name, role in [("ana", "all"), ("cara", "care")]:
        added = CliRunner().invoke(
            cli,
            ["reviewer", "add", "-c", str(config), name, "--role", role, "--password-stdin"],
            input=PASSWORD + "\n",
        )
        assert added.exit_code == 0, added.output
    port = _free_port()
    log = (root / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "linkage.cli", "serve", "-c", str(config), "--port", str(port)],
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, server, root / "serve.log")
        yield Served(config, warehouse, landing, url)
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_up(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"linkage serve exited {server.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"linkage serve did not answer within 60 s: {log.read_text()}")


@dataclass
class Browser:
    page: sync_api.Page
    served: Served
    requested: list[str] = field(default_factory=list)

    def go(self, path: str) -> None:
        self.page.goto(self.served.url + path)

    def sign_in(self, name: str, password: str = PASSWORD) -> None:
        self.page.fill("#name", name)
        self.page.fill("#password", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_load_state()

    def text(self) -> str:
        return self.page.inner_text("body")

    def pair_in_url(self) -> tuple[str, str]:
        query = parse_qs(urlparse(self.page.url).query)
        return query["l"][0], query["r"][0]


@contextmanager
def browser(served: Served, name: str | None = None) -> Iterator[Browser]:
    """A fresh headless chromium (signed in as `name`, if given)."""
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
        )
        try:
            page = chromium.new_page(viewport={"width": 1360, "height": 900})
            session = Browser(page, served)
            page.on("request", lambda request: session.requested.append(request.url))
            if name is not None:
                session.go("/queue")
                session.sign_in(name)
                assert page.url.endswith("/queue"), page.url
            yield session
        finally:
            chromium.close()
    elsewhere = [url for url in session.requested if not url.startswith(served.url)]
    assert not elsewhere, f"the pages loaded something from elsewhere: {elsewhere[:3]}"


def _viewer(served: Served, role: str):  # noqa: ANN202
    context = ReviewContext.load(load_project(served.config))
    from datetime import datetime

    viewer = context.viewer(Reviewer("test", role, True, datetime(2026, 1, 1), None))
    assert viewer is not None
    return context, viewer


def _queue(served: Served, role: str = "all") -> list[QueueItem]:
    _, viewer = _viewer(served, role)
    with duckdb.connect(str(served.warehouse), read_only=True) as con:
        return queue_page(con, viewer, QueueFilters(), 1, 100_000).items


# ---------------------------------------------------------------------------------------


def test_sign_in_and_the_queue(served: Served) -> None:
    expected = _queue(served)
    assert len(expected) >= 10, "the sample has a queue to work"
    with browser(served) as session:
        session.go("/queue")
        assert "/login" in session.page.url
        session.sign_in("ana", "not the password")
        assert "/login" in session.page.url
        assert "Wrong name or password" in session.page.inner_text("[role=alert]")
        session.sign_in("ana")
        assert session.page.url.endswith("/queue")
        assert f"{len(expected)} pairs" in session.page.inner_text("form.filters")
        shown = session.page.eval_on_selector_all(
            "#queue tr[data-pair]", "rows => rows.map(row => row.dataset.pair)"
        )
        assert shown == [f"{i.record_key_l}|{i.record_key_r}" for i in expected[:50]]
        priorities = [item.priority for item in expected]
        assert priorities == sorted(priorities), "most at stake first"
        session.page.screenshot(path=str(DOCS / "review-queue.png"))

        session.page.select_option("select[name=agency]", "police")
        session.page.click("form.filters button")
        session.page.wait_for_load_state()
        police = [i for i in expected if "police:" in i.record_key_l + i.record_key_r]
        assert f"{len(police)} pair" in session.page.inner_text("form.filters")
        pairs = session.page.eval_on_selector_all(
            "#queue tr[data-pair]", "rows => rows.map(row => row.dataset.pair)"
        )
        assert pairs and all("police:" in pair for pair in pairs)

        session.page.keyboard.press("j")
        session.page.keyboard.press("j")
        session.page.keyboard.press("Enter")
        session.page.wait_for_url("**/pair?**")
        assert "pos=2" in session.page.url and "agency=police" in session.page.url
        assert session.pair_in_url() == tuple(pairs[2].split("|"))


def test_an_item_shows_the_evidence(served: Served) -> None:
    with browser(served, "ana") as session:
        session.go("/queue/at?pos=0")
        session.page.wait_for_url("**/pair?**")
        page = session.page
        assert page.locator("#records tr[data-field]").count() >= 4
        assert page.locator("#records tr.same, #records tr.differs").count() >= 2
        assert page.locator("#records td.v[title^='as sent:']").count() >= 2, "raw on hover"
        total = page.locator("#total-weight")
        parts, stored = (
            float(total.get_attribute(a) or "nan") for a in ("data-parts", "data-stored")
        )
        assert parts == pytest.approx(stored, abs=0.01), "the parts add up to the stored weight"
        assert page.locator("#weights tr[data-comparison]").count() >= 5
        assert page.locator("svg[role=img] circle").count() >= 2
        assert "Person id history" in session.text()
        page.screenshot(path=str(DOCS / "review-item.png"), full_page=True)

        page.keyboard.press("j")
        page.wait_for_url("**pos=1**")
        page.keyboard.press("k")
        page.wait_for_url("**pos=0**")
        page.keyboard.press("q")
        page.wait_for_url("**/queue")


def test_the_weights_are_splinks_waterfall_figures(linked_sample) -> None:
    """Each comparison's weight and term-frequency adjustment on an item page equal the
    ones Splink computes for the pair (its waterfall chart's bars), and add up to the
    stored match weight."""
    project = load_project(linked_sample.config)
    context = ReviewContext.load(project)
    from datetime import datetime

    viewer = context.viewer(Reviewer("test", "all", True, datetime(2026, 1, 1), None))
    assert viewer is not None
    edges = read_table(linked_sample.warehouse, "edge")
    chosen = edges.sort_values("match_weight").iloc[:: max(1, len(edges) // 12)]
    with duckdb.connect(str(linked_sample.warehouse), read_only=True) as con:
        keys = sorted(set(chosen["record_key_l"]) | set(chosen["record_key_r"]))
        linker, records = _population_linker(con, linked_sample.model_path, keys)
        by_key = records.set_index("record_key", drop=False)
        tf_levels = 0
        for edge in chosen.itertuples():
            evidence = pair_evidence(con, context, viewer, edge.record_key_l, edge.record_key_r)
            assert evidence is not None and evidence.scored is not None
            assert evidence.scored.parts_total == pytest.approx(edge.match_weight, abs=1e-6)
            (splink,) = _score_pair(linker, by_key, edge.record_key_l, edge.record_key_r)
            for row in evidence.scored.rows:
                assert row.weight == pytest.approx(splink[f"mw_{row.comparison}"], abs=1e-9)
                if row.tf_adjustment is not None:
                    tf_levels += 1
                    expected = splink[f"mw_tf_adj_{row.comparison}"]
                    assert row.tf_adjustment == pytest.approx(expected, abs=1e-9)
    assert tf_levels > 0, "some chosen pairs reached a term-frequency adjusted level"


def test_a_reviewer_without_police_sees_no_police_record(served: Served) -> None:
    with duckdb.connect(str(served.warehouse), read_only=True) as con:
        police_ids = {
            row[0]
            for row in con.execute(
                "SELECT source_record_id FROM canonical_record WHERE source = 'police'"
            ).fetchall()
        }
        mixed, police_only = (
            con.execute(
                "SELECT person_id FROM person WHERE list_contains(sources, 'police')"
                f" AND len(sources) {test} ORDER BY records DESC, person_id LIMIT 1"
            ).fetchall()[0][0]
            for test in ("> 1", "= 1")
        )
        police_pair = con.execute(
            "SELECT record_key_l, record_key_r FROM link_review"
            " WHERE record_key_l LIKE 'police:%' OR record_key_r LIKE 'police:%' LIMIT 1"
        ).fetchall()[0]
    care_queue = _queue(served, "care")
    assert care_queue and len(care_queue) < len(_queue(served, "all"))
    searched = sorted(police_ids)[0]
    with browser(served, "cara") as session:
        seen: dict[str, str] = {}

        def look(name: str, path: str | None = None) -> None:
            if path is not None:
                session.go(path)
            html = session.page.content()
            echoed = f'value="{searched}"', f"“{searched}”"  # the search box and its answer
            for echo in echoed:
                html = html.replace(echo, "")
            seen[name] = html
            assert "police" not in html.lower(), f"'police' on the {name} page"
            leaked = [i for i in police_ids if i in html]
            assert not leaked, f"police record {leaked[0]} on the {name} page"

        pages = -(-len(care_queue) // 50)
        for number in range(1, pages + 1):
            look(f"queue page {number}", f"/queue?page={number}")
        look("not sure", "/queue?status=unsure")
        for position in range(3):
            look(f"item {position}", f"/queue/at?pos={position}")
        look("a person with police records", f"/person/{mixed}")
        assert session.page.locator("#records tr[data-record]").count() >= 1
        session.page.fill("#q", searched)
        session.page.keyboard.press("Enter")
        session.page.wait_for_url("**/search?**")
        look("search for a police record id")
        assert "No record you may see" in session.text()
        look("a police pair", f"/pair?l={police_pair[0]}&r={police_pair[1]}")
        assert "Not found" in session.text()
        look("a person known only to police", f"/person/{police_only}")
        assert "Not found" in session.text()
    assert len(seen) >= 8


def test_decisions_shape_the_next_nights(served: Served) -> None:
    """'Same person' on a pair left apart links it the next night; 'different people' on a
    merged pair splits it (with id history), and the night after keeps both."""
    from flows.nightly import nightly

    queue = _queue(served)
    together = next(i for i in queue if i.person_id_l != i.person_id_r and i.priority)
    apart = _a_merged_pair(served, {together.person_id_l, together.person_id_r})
    with browser(served, "ana") as session:
        page = session.page
        following = queue[together.position + 1]
        session.go(f"/queue/at?pos={together.position}")
        page.wait_for_url("**/pair?**")
        assert session.pair_in_url() == (together.record_key_l, together.record_key_r)
        page.fill("#note", "same child: the surname mis-keyed")
        page.keyboard.press("Escape")
        page.keyboard.press("s")
        page.wait_for_url("**recorded=match**")
        assert session.pair_in_url() == (following.record_key_l, following.record_key_r)
        assert "Decision recorded: same person" in session.text()

        page.fill("#q", apart.person_id)
        page.keyboard.press("Enter")
        page.wait_for_url(f"**/person/{apart.person_id}**")
        page.click(f"#edges a[href*='{apart.key_l.split(':')[1]}']")
        page.wait_for_url("**/pair?**")
        assert session.pair_in_url() == (apart.key_l, apart.key_r)
        page.fill("#note", "different dates of birth on the birth register")
        page.keyboard.press("Escape")
        page.keyboard.press("d")
        page.wait_for_url("**recorded=non-match**")
        assert "Decided: different people by ana" in session.text()

    decisions = read_table(served.warehouse, "review_decision").set_index("decision")
    assert decisions.loc["match", "decided_by"] == "ana"
    assert '"pair":' in decisions.loc["non-match", "evidence"]
    changed_key = together.record_key_r
    before, expected_after = _change_surname(served, changed_key)

    fourth = nightly(served.config, date.fromisoformat(NIGHT_4))
    assert fourth.status == "complete"
    index = read_table(served.warehouse, "linked_index").set_index("record_key").person_id
    assert index[together.record_key_l] == index[together.record_key_r], "linked as decided"
    assert index[apart.key_l] != index[apart.key_r], "split as decided"
    history = read_table(served.warehouse, "person_id_history")
    tonight = history[history.run_date.astype(str) == NIGHT_4]
    split = tonight[tonight.event == "split"]
    assert apart.person_id in set(split.related_person_id), "the split is in the id history"
    merged = tonight[tonight.event == "merged"]
    joined = set(merged.person_id) | set(merged.related_person_id)
    assert {together.person_id_l, together.person_id_r} <= joined, "the merge is in the history"
    after = read_table(served.warehouse, "canonical_record").set_index("record_key").surname
    assert after[changed_key] == expected_after != before

    with browser(served, "ana") as session:
        queue_text = session.page.inner_text("#queue")
        assert "changed since decided: same person by ana" in queue_text
        assert f"surname: {before} → {expected_after}" in queue_text
        session.go("/queue/at?pos=0")
        session.page.wait_for_url("**/pair?**")
        assert session.pair_in_url() == (together.record_key_l, together.record_key_r)
        assert expected_after in session.page.inner_text("#changes")
        session.go(f"/pair?l={apart.key_l}&r={apart.key_r}")
        assert "two persons now" in session.text()
        assert "split" in session.page.inner_text("main")

    persons_after = {index[apart.key_l], index[apart.key_r]}
    fifth = nightly(served.config, date.fromisoformat(NIGHT_5))
    assert fifth.status == "complete"
    again = read_table(served.warehouse, "linked_index").set_index("record_key").person_id
    assert {again[apart.key_l], again[apart.key_r]} == persons_after, "stays split, same ids"
    assert again[together.record_key_l] == again[together.record_key_r]
    history = read_table(served.warehouse, "person_id_history")
    night_5 = history[history.run_date.astype(str) == NIGHT_5]
    assert not (set(night_5.person_id) | set(night_5.related_person_id.dropna())) & persons_after


@dataclass
class MergedPair:
    person_id: str
    key_l: str
    key_r: str


def _a_merged_pair(served: Served, avoid: set[str]) -> MergedPair:
    """Two records the index holds as one person of just those two, linked by one edge."""
    with duckdb.connect(str(served.warehouse), read_only=True) as con:
        rows = con.execute(
            """
            SELECT p.person_id, e.record_key_l, e.record_key_r
            FROM edge e
            JOIN linked_index l ON l.record_key = e.record_key_l
            JOIN linked_index r ON r.record_key = e.record_key_r
            JOIN person p ON p.person_id = l.person_id
            WHERE e.linked AND l.person_id = r.person_id AND p.records = 2
            ORDER BY e.match_probability, p.person_id
            """
        ).fetchall()
    person_id, key_l, key_r = next(row for row in rows if row[0] not in avoid)
    return MergedPair(person_id, key_l, key_r)


def _change_surname(served: Served, record_key: str) -> tuple[str, str]:
    """Change a record's surname in the next two nights' files, as the agency would."""
    project = load_project(served.config)
    source, record_id = record_key.split(":", 1)
    config = next(c for c in project.source_configs() if c.source == source)
    assert config.fields.surname is not None and config.fields.surname.column is not None
    with duckdb.connect(str(served.warehouse), read_only=True) as con:
        (before,) = con.execute(
            "SELECT surname FROM canonical_record WHERE record_key = ?", [record_key]
        ).fetchall()[0]
    for night in (NIGHT_4, NIGHT_5):
        _rewrite(served.landing, config, date.fromisoformat(night), record_id)
    return before, before + "SON"


def _rewrite(landing: Path, config: SourceConfig, night: date, record_id: str) -> None:
    (path,) = sorted(landing.glob(config.file_pattern(night)))
    spec = config.file
    ending = "\r\n" if b"\r\n" in path.read_bytes()[:4096] else "\n"
    with path.open(encoding=spec.encoding, newline="") as handle:
        rows = list(csv.reader(handle, delimiter=spec.delimiter, quotechar=spec.quote))
    header = rows[0]
    id_at, surname_at = header.index(config.record_id), header.index(config.fields.surname.column)  # type: ignore[union-attr]
    (row,) = [row for row in rows[1:] if row[id_at] == record_id]
    row[surname_at] = row[surname_at] + "son"
    with path.open("w", encoding=spec.encoding, newline="") as handle:
        writer = csv.writer(
            handle, delimiter=spec.delimiter, quotechar=spec.quote, lineterminator=ending
        )
        writer.writerows(rows)
