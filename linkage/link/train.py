"""Train the model on the warehouse's canonical records and save it, versioned.

The comparisons follow the fields the records fill (link/model.py). u comes from random
sampling; m from EM over blocks chosen from what is present, shared identifiers first
(the pairs most surely the same person), each counted before use. Nightly runs load a
saved model and never retrain silently.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import splink
from splink import DuckDBAPI, Linker, block_on
from splink.internals.blocking_rule_creator import BlockingRuleCreator
from splink.internals.exceptions import EMTrainingException

from linkage.extract import quote_identifier
from linkage.identifiers import IdentifierRegistry, default_registry
from linkage.link.model import (
    EARLIER_POSTCODE,
    EXACT,
    HISTORY_COLUMNS,
    MIN_FILLED,
    OTHER_SURNAME,
    PERSON_COLUMNS,
    SAME_POSTCODE,
    ModelShape,
    comparison_columns,
    filled_columns,
    filled_from_counts,
    model_columns,
    model_settings,
)
from linkage.schema import base_columns
from linkage.warehouse import table_columns

log = logging.getLogger(__name__)
# u is estimated from random pairs: about five per record, at least Splink's default of a
# million (so a small project does not compare nearly all its pairs), at most 5M.
U_SAMPLE_PAIRS = (1e6, 5.0, 5e6)  # floor, pairs per record, ceiling
EM_MAX_PAIRS = 5e6  # a larger EM block is sampled down to this many pairs (max_pairs)
EM_MIN_PAIRS = 20  # a block with fewer pairs says too little to train on
PRIOR_RULES_RECALL = 0.8
UNSEEN_DISAGREEMENT_M = 1e-3
MIN_LABELLED_MATCHES = 100  # fewer reviewed matches are too few to estimate m from
# Levels filled by the pipeline's own history (earlier nights' values): when no training
# pair reached one (a model trained on the first night), it takes the m and u of the level
# it stands in for, as a value the record held is as good as the one it holds.
LEVEL_TIES = {
    ("address", EARLIER_POSTCODE): ("address", SAME_POSTCODE),
    ("surname", OTHER_SURNAME): ("surname", EXACT),
}


@dataclass(frozen=True)
class EmBlock:
    """A candidate EM block and whether it must always be used when it has pairs."""

    name: str
    columns: tuple[str, ...]
    always: bool = False

    @property
    def rule(self) -> BlockingRuleCreator:
        return block_on(*self.columns)


def place_column(shape: ModelShape) -> str | None:
    """The finest filled column that says where someone lives, short of the address."""
    return next((c for c in ("postcode_outward", "postcode", "town") if c in shape.filled), None)


def em_candidates(shape: ModelShape) -> list[EmBlock]:
    """EM blocks in order of trust, over filled columns only: shared identifiers, name with
    place, name with birth date, birth date with place.

    No block on surname + birth date or on address alone: there twins and siblings
    outnumber duplicates, and EM would learn "household" as "person".
    """
    place = place_column(shape)
    blocks = [EmBlock(f"shared {name}", (name,), always=True) for name in shape.identifiers]
    if place is not None:
        blocks.append(EmBlock("name + place", ("forename_canonical", "surname", place), True))
    blocks.append(EmBlock("name + birth date", ("forename_canonical", "surname", "date_of_birth")))
    if place is not None:
        blocks.append(EmBlock("birth date + place", ("date_of_birth", place)))
    return [block for block in blocks if all(column in shape.filled for column in block.columns)]


def near_certain_rules(shape: ModelShape) -> list[tuple[str, ...]]:
    """Columns whose equality is near-certain to pair one person's records, for the prior
    (their recall is a guess)."""
    rules: list[tuple[str, ...]] = [(name,) for name in shape.identifiers]
    person = ("forename_canonical", "surname", "date_of_birth", "postcode")
    held = tuple(column for column in person if column in shape.filled)
    if len(held) >= 3:
        rules.append(held)
    return rules


@dataclass
class TrainingReport:
    """What training used, printed by `linkage train` and kept in the model's metadata."""

    comparisons: list[str] = field(default_factory=list)
    fields_left_out: list[str] = field(default_factory=list)  # no record fills them
    em_blocks: list[dict[str, Any]] = field(default_factory=list)  # name, rule, pairs, used, why
    prior: float | None = None
    prior_rules: list[str] = field(default_factory=list)
    u_sample_pairs: float = U_SAMPLE_PAIRS[-1]  # random pairs u was estimated from
    levels_settled: list[str] = field(default_factory=list)  # levels no estimate reached
    # per EM block, levels its pairs never showed (expected: a block fixes its own fields)
    levels_not_observed: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        lines = [f"comparisons: {', '.join(self.comparisons)}"]
        if self.fields_left_out:
            lines.append(f"left out (no record fills them): {', '.join(self.fields_left_out)}")
        lines.append(f"prior (two random records match): {self.prior:.3g}")
        for block in self.em_blocks:
            pairs = "not counted" if block["pairs"] is None else f"{block['pairs']:,} pairs"
            verdict = "used" if block["used"] else "skipped"
            lines.append(f"EM block {block['name']}: {pairs}, {verdict} ({block['why']})")
        if self.levels_not_observed:
            lines.append(
                f"{len(self.levels_not_observed)} level(s) not observed by one EM block"
                " (their m comes from the other blocks): " + "; ".join(self.levels_not_observed)
            )
        if self.levels_settled:
            lines.append(
                f"{len(self.levels_settled)} level(s) no training pair reached, set by rule:"
                f" {', '.join(self.levels_settled)}"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class ModelMetadata:
    version: str
    trained_at: str
    splink_version: str
    seed: int
    records: int
    records_by_source: dict[str, int]
    u_sample_pairs: float
    em_blocking_rules: list[str]  # the blocks EM used
    labelled_matches: int = 0  # reviewed matches m was also estimated from
    training: dict[str, Any] = field(default_factory=dict)  # the TrainingReport


def model_input(
    con: duckdb.DuckDBPyConnection,
    registry: IdentifierRegistry | None = None,
    record_keys: pa.Array | list[str] | None = None,
    also: Sequence[str] = (),
) -> pd.DataFrame:
    """The model's columns of canonical_record (or of these records), sorted so every run
    sees the same order, and the columns `also` names that the table has.

    Without a registry: the person columns and every identifier column the table has.
    """
    wanted = input_columns(con, registry)
    if also:
        present = set(table_columns(con, "canonical_record"))
        wanted += [column for column in also if column in present and column not in wanted]
    columns = ", ".join(quote_identifier(column) for column in wanted)
    if record_keys is None:
        return _frame(con, con.sql(f"SELECT {columns} FROM canonical_record ORDER BY record_key"))
    wanted = pa.table({"record_key": pa.array(record_keys, pa.string())})
    con.register("model_input_keys", wanted)
    try:
        # a text column none of these records fills is still text (a whole population's
        # would be too), so Splink compares it as text
        return _frame(
            con,
            con.sql(
                f"SELECT {columns} FROM canonical_record"
                " SEMI JOIN model_input_keys USING (record_key) ORDER BY record_key"
            ),
            empty_text_too=True,
        )
    finally:
        con.unregister("model_input_keys")


def input_columns(
    con: duckdb.DuckDBPyConnection,
    registry: IdentifierRegistry | None = None,
    table: str = "canonical_record",
) -> list[str]:
    """The columns model_input reads: the model's that the table has."""
    present = [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()]
    if registry is None:
        base = {column.name for column in base_columns()}
        wanted = PERSON_COLUMNS + [name for name in present if name not in base]
    else:
        wanted = model_columns(registry)
    return [column for column in wanted if column in present]


def filled_input_columns(
    con: duckdb.DuckDBPyConnection,
    registry: IdentifierRegistry,
    table: str = "canonical_record",
) -> frozenset[str]:
    """filled_columns of model_input (of the table's records), counted in SQL without
    reading the records: each column's values are counted only up to MIN_FILLED (a scan
    that stops there, five times faster at a million records than a full count)."""
    columns = input_columns(con, registry, table)
    if not columns:
        return frozenset()
    counts = " UNION ALL ".join(
        f"SELECT {index} AS i, count(*) FROM (SELECT 1 FROM {table}"
        f" WHERE {quote_identifier(column)} IS NOT NULL LIMIT {MIN_FILLED})"
        for index, column in enumerate(columns)
    )
    found = dict(con.execute(counts).fetchall())
    return filled_from_counts({column: found[index] for index, column in enumerate(columns)})


def _frame(
    con: duckdb.DuckDBPyConnection,
    relation: duckdb.DuckDBPyRelation,
    empty_text_too: bool = False,
) -> pd.DataFrame:
    """relation.df(), the same frame in half the time at a million records.

    .df() builds its str columns value by value; pandas' str dtype is Arrow-backed, so
    from Arrow they cost next to nothing. Every other column (dates, lists, a text column
    with no value at all, which .df() leaves as object) still goes through DuckDB's own
    conversion (on `con`: a scratch database costs 20 ms to open), so the frame's values
    and dtypes are exactly .df()'s.
    """
    table = relation.to_arrow_table()
    text = [
        column.name
        for column in table.schema
        if column.type in (pa.string(), pa.large_string())
        and (empty_text_too or table[column.name].null_count < table.num_rows)
    ]
    frame = table.select(text).to_pandas(types_mapper=_pandas_str)
    others = [name for name in table.column_names if name not in text]
    if others:
        rest = con.from_arrow(table.select(others)).df()
        frame = pd.concat([frame, rest], axis=1)
    return frame[table.column_names]


def _pandas_str(arrow_type: pa.DataType) -> pd.StringDtype | None:
    if arrow_type in (pa.string(), pa.large_string()):
        return pd.StringDtype(na_value=np.nan)
    return None


def load_model_input(warehouse: Path, registry: IdentifierRegistry | None = None) -> pd.DataFrame:
    """model_input from a warehouse file, opened read-only."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return model_input(con, registry)


def identifier_u(records: pd.DataFrame, names: list[str]) -> dict[str, float]:
    """u of identifier equality: 1 / number of distinct valid values (see model.py)."""
    return {column: 1.0 / max(records[column].nunique(dropna=True), 1) for column in names}


def reviewed_matches(warehouse: Path) -> pd.DataFrame:
    """Pairs analysts reviewed as one person (record_key_l, record_key_r)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
        if "review_decision" not in tables:
            return pd.DataFrame(columns=["record_key_l", "record_key_r"])
        return con.execute(
            "SELECT record_key_l, record_key_r FROM review_decision WHERE decision = 'match'"
            " ORDER BY ALL"
        ).df()


def model_shape(records: pd.DataFrame, registry: IdentifierRegistry | None = None) -> ModelShape:
    """The model's shape for these records: the fields they fill."""
    return ModelShape(filled_columns(records), registry or default_registry())


def train_model(
    records: pd.DataFrame,
    seed: int = 42,
    labelled_matches: pd.DataFrame | None = None,
    registry: IdentifierRegistry | None = None,
) -> tuple[Linker, TrainingReport]:
    """A trained Splink linker over the records (in an in-memory DuckDB), and what it used.

    With at least MIN_LABELLED_MATCHES reviewed matches, m is also estimated from them
    (Splink averages it with the EM estimates): analysts' labels are the best evidence of
    how one person's records differ in this population.
    """
    shape = model_shape(records, registry)
    db_api = DuckDBAPI(connection=duckdb.connect())
    canonical = db_api.register(records, dataset_display_name="canonical_record")
    settings = model_settings(shape, identifier_u(records, shape.identifiers))
    linker = Linker(canonical, settings, log_level=logging.WARNING)
    report = TrainingReport(
        comparisons=[c["output_column_name"] for c in _settings(linker)["comparisons"]],
        fields_left_out=sorted(set(PERSON_COLUMNS) - shape.filled - HISTORY_COLUMNS),
    )
    counter = _PairCounter(records)
    _estimate_prior(linker, shape, counter, report)
    report.u_sample_pairs = u_sample_pairs(len(records))
    with _quiet_about_sample_size():
        linker.training.estimate_u_using_random_sampling(max_pairs=report.u_sample_pairs, seed=seed)
    _estimate_m_by_em(linker, shape, counter, report)
    _estimate_m_from_labels(linker, records, labelled_matches)
    settled = settle_unobserved_levels(_settings(linker), report)
    return Linker(canonical, settled, log_level=logging.WARNING), report


def _settings(linker: Linker) -> dict:
    return linker.misc.save_model_to_json()


def _rule_sql(rule: str | BlockingRuleCreator) -> str:
    return rule if isinstance(rule, str) else rule.get_blocking_rule("duckdb").blocking_rule_sql


@dataclass(frozen=True)
class _PairCounter:
    """Exact pairs a block on equal columns makes: sum of n(n-1)/2 over its groups.

    One GROUP BY, linear in records, where enumerating the pairs (or Splink's sampled
    estimate, which reads a sparse identifier's few pairs as none) is not.
    """

    records: pd.DataFrame

    def __call__(self, columns: tuple[str, ...]) -> int:
        quoted = [quote_identifier(column) for column in columns]
        held = " AND ".join(f"{column} IS NOT NULL" for column in quoted)
        sql = (
            "SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM"
            f" (SELECT count(*) AS n FROM records WHERE {held} GROUP BY {', '.join(quoted)})"
        )
        with duckdb.connect() as con:
            con.register("records", self.records[list(columns)])
            return int(con.execute(sql).fetchall()[0][0])


def u_sample_pairs(records: int) -> float:
    floor, per_record, ceiling = U_SAMPLE_PAIRS
    return min(max(floor, per_record * records), ceiling)


def _estimate_prior(
    linker: Linker, shape: ModelShape, count: _PairCounter, report: TrainingReport
) -> None:
    rules: list[str | BlockingRuleCreator] = [
        block_on(*columns) for columns in near_certain_rules(shape) if count(columns) > 0
    ]
    report.prior_rules = [_rule_sql(rule) for rule in rules]
    if rules:  # with none, the settings' prior (Splink's 1e-4) stands
        linker.training.estimate_probability_two_random_records_match(
            rules, recall=PRIOR_RULES_RECALL
        )
    report.prior = float(_settings(linker)["probability_two_random_records_match"])


TRAINING_LOGGER = "splink.internals.linker_components.training"


@contextmanager
def _quiet_about_sample_size() -> Iterator[None]:
    """Splink warns whenever u is sampled from exactly its default of 1e6 pairs; that is
    our floor for small projects, chosen on purpose (u_sample_pairs), so not for the console."""

    def other_than_the_default_warning(record: logging.LogRecord) -> bool:
        return "default value for `max_pairs`" not in record.getMessage()

    logger = logging.getLogger(TRAINING_LOGGER)
    logger.addFilter(other_than_the_default_warning)
    try:
        yield
    finally:
        logger.removeFilter(other_than_the_default_warning)


EM_LOGGER = "splink.internals.expectation_maximisation"
NOT_OBSERVED = re.compile(r"Level (.+) on comparison (\S+) not observed in dataset")


@contextmanager
def _levels_not_observed() -> Iterator[list[str]]:
    """Splink warns once per level an EM block did not observe (forty a training): they
    are collected for the training report instead of the console."""
    unseen: list[str] = []

    def collect(record: logging.LogRecord) -> bool:
        found = NOT_OBSERVED.search(record.getMessage())
        if found:
            unseen.append(f"{found[2]}: {found[1]}")
        return not found

    logger = logging.getLogger(EM_LOGGER)
    logger.addFilter(collect)
    try:
        yield unseen
    finally:
        logger.removeFilter(collect)


def _estimate_m_by_em(
    linker: Linker, shape: ModelShape, count: _PairCounter, report: TrainingReport
) -> None:
    """EM over the candidate blocks: the `always` ones whenever they have pairs, the rest
    only while some comparison has no block yet that estimates it."""
    reads = comparison_columns(shape)
    unestimated = set(report.comparisons)
    for block in em_candidates(shape):
        estimates = {name for name, columns in reads.items() if not columns & set(block.columns)}
        entry: dict[str, Any] = {"name": block.name, "rule": _rule_sql(block.rule), "pairs": None}
        report.em_blocks.append(entry)
        if not block.always and not estimates & unestimated:
            entry |= {"used": False, "why": "every comparison it could estimate already is"}
            continue
        entry["pairs"] = pairs = count(block.columns)
        if pairs < EM_MIN_PAIRS:
            entry |= {"used": False, "why": f"fewer than {EM_MIN_PAIRS} pairs"}
            continue
        sampled = pairs > EM_MAX_PAIRS
        try:
            with _levels_not_observed() as unseen:
                linker.training.estimate_parameters_using_expectation_maximisation(
                    block.rule, max_pairs=EM_MAX_PAIRS if sampled else None
                )
            report.levels_not_observed += [f"{block.name}: {level}" for level in unseen]
        except EMTrainingException as error:
            entry |= {"used": False, "why": f"EM did not converge: {error}"}
            continue
        entry |= {"used": True, "why": f"sampled to {EM_MAX_PAIRS:,.0f}" if sampled else "all"}
        unestimated -= estimates


def _estimate_m_from_labels(
    linker: Linker, records: pd.DataFrame, labelled_matches: pd.DataFrame | None
) -> None:
    if labelled_matches is None:
        return
    known = set(records["record_key"])
    labelled_matches = labelled_matches[
        labelled_matches["record_key_l"].isin(known) & labelled_matches["record_key_r"].isin(known)
    ]
    if len(labelled_matches) < MIN_LABELLED_MATCHES:
        return
    labels = labelled_matches.assign(
        source_dataset_l="canonical_record", source_dataset_r="canonical_record"
    )
    linker.table_management.register_table(labels, "reviewed_matches", overwrite=True)
    linker.training.estimate_m_from_pairwise_labels("reviewed_matches")


def settle_unobserved_levels(settings: dict, report: TrainingReport | None = None) -> dict:
    """Give every level an m and a u of our choosing where no estimate reached it.

    Splink falls back to positional defaults (or to m = 1e-6, strong evidence against)
    for a level EM never saw among matches, which can make a near-agreement count against
    a pair. An unseen partial-agreement level is made neutral (m = u: no evidence either
    way); an unseen disagreement level gets m = UNSEEN_DISAGREEMENT_M, rare among matches.
    A level random sampling never reached is rarer among random pairs than one in the
    pairs sampled: it gets half that as its u. A level of LEVEL_TIES takes its partner's.
    """
    sampled = (report or TrainingReport()).u_sample_pairs
    by_label = {
        (comparison["output_column_name"], level.get("label_for_charts")): level
        for comparison in settings["comparisons"]
        for level in comparison["comparison_levels"]
    }
    for comparison in settings["comparisons"]:
        levels = [
            level for level in comparison["comparison_levels"] if not level.get("is_null_level")
        ]
        for position, level in enumerate(levels):
            key = (comparison["output_column_name"], level.get("label_for_charts"))
            label = f"{key[0]}: {key[1]}"
            unseen = not isinstance(level.get("u_probability"), float) or not (
                isinstance(level.get("m_probability"), float) and level["m_probability"] > 1e-6
            )
            tied = by_label.get(LEVEL_TIES.get(key, ("", "")))
            if unseen and tied is not None:
                level["m_probability"] = tied["m_probability"]
                level["u_probability"] = tied["u_probability"]
                if report is not None:
                    report.levels_settled.append(f"{label} (as {tied['label_for_charts']})")
                continue
            if not isinstance(level.get("u_probability"), float):
                level["u_probability"] = 0.5 / sampled
                if report is not None:
                    report.levels_settled.append(f"{label} (u)")
            if isinstance(level.get("m_probability"), float) and level["m_probability"] > 1e-6:
                continue
            is_else = position == len(levels) - 1
            level["m_probability"] = UNSEEN_DISAGREEMENT_M if is_else else level["u_probability"]
            if report is not None:
                report.levels_settled.append(f"{label} (m)")
    return settings


def save_model(
    linker: Linker,
    records: pd.DataFrame,
    models_dir: Path,
    seed: int,
    labelled_matches: int = 0,
    report: TrainingReport | None = None,
) -> Path:
    """Write model-<version>.json (Splink settings), its metadata and its weights chart."""
    trained_at = datetime.now(UTC)
    version = trained_at.strftime("%Y%m%dT%H%M%SZ")
    models_dir.mkdir(parents=True, exist_ok=True)
    path = models_dir / f"model-{version}.json"
    linker.misc.save_model_to_json(str(path))
    report = report or TrainingReport()
    metadata = ModelMetadata(
        version=version,
        trained_at=trained_at.isoformat(),
        splink_version=splink.__version__,
        seed=seed,
        records=len(records),
        labelled_matches=labelled_matches if labelled_matches >= MIN_LABELLED_MATCHES else 0,
        records_by_source=records["source"].value_counts().sort_index().to_dict(),
        u_sample_pairs=report.u_sample_pairs,
        em_blocking_rules=[block["rule"] for block in report.em_blocks if block["used"]],
        training=asdict(report),
    )
    (models_dir / f"model-{version}.meta.json").write_text(json.dumps(asdict(metadata), indent=2))
    chart = linker.visualisations.match_weights_chart()
    # inline: the chart's JavaScript is bundled, so it opens offline (no CDN)
    (models_dir / f"model-{version}.weights.html").write_text(chart.to_html(inline=True))
    log.info("model %s trained on %d records", version, len(records))
    return path


def training_report(model_path: Path) -> TrainingReport:
    """What training used, as saved in the model's metadata."""
    meta = model_path.with_name(model_path.name.replace(".json", ".meta.json"))
    saved = json.loads(meta.read_text(encoding="utf-8")).get("training", {})
    return TrainingReport(**saved)


def latest_model(models_dir: Path) -> Path | None:
    models = sorted(models_dir.glob("model-*Z.json"))
    return models[-1] if models else None
