"""What the review application reads once at start: the project, its roles and rules.

The configs are read when the server starts (a config change needs a restart, as for a
nightly run); the warehouse is opened per request and closed at once, so the nightly run
can take it whenever no page is being drawn.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from linkage.config import ProjectConfig, SourceConfig, load_sharing_rules
from linkage.errors import LinkageError
from linkage.extract import quote_identifier, raw_table_name
from linkage.extract.header import ROW_NUMBER
from linkage.extract.load import archived_file, load_files
from linkage.review import ChangedDecision, changed_decisions, decisions_state
from linkage.review_app.accounts import Reviewer
from linkage.review_app.permissions import Viewer, never_shared_columns
from linkage.review_app.weights import ModelWeights
from linkage.warehouse import connect_warehouse, open_warehouse


@dataclass
class ReviewContext:
    project: ProjectConfig
    roles: dict[str, frozenset[str]]  # role -> agencies
    source_configs: dict[str, SourceConfig]
    never_shared: dict[str, frozenset[str]]
    _models: dict[Path, ModelWeights | None] = field(default_factory=dict)
    # changed decisions, recomputed only when a night publishes or a decision is recorded
    _changed: tuple[tuple, list[ChangedDecision]] | None = None
    # One connection at a time in this process: DuckDB refuses a read-only and a
    # read-write connection to one file at once, and pages are quick.
    _warehouse_lock: threading.Lock = field(default_factory=threading.Lock)
    # each source's latest files as sent: (their checksums, raw_<source> loaded from the
    # archive), loaded when first shown, since the night keeps no raw rows in the warehouse
    _sent: dict[str, tuple[str, duckdb.DuckDBPyConnection]] = field(default_factory=dict)
    _sent_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, project: ProjectConfig) -> ReviewContext:
        registry = project.identifier_registry()
        rules = (
            load_sharing_rules(project.sharing_rules, registry) if project.sharing_rules else None
        )
        return cls(
            project=project,
            roles=project.review_roles(),
            source_configs={config.source: config for config in project.source_configs()},
            never_shared=never_shared_columns(rules),
        )

    @property
    def sources(self) -> list[str]:
        return sorted(self.source_configs)

    def viewer(self, reviewer: Reviewer) -> Viewer | None:
        """What the reviewer may see; None if their role is no longer configured."""
        agencies = self.roles.get(reviewer.role)
        if agencies is None or not reviewer.active:
            return None
        identifier_types = {
            kind
            for source in agencies
            for kind in self.source_configs[source].identifiers
            if kind not in self.never_shared.get(source, ())
        }
        return Viewer(
            name=reviewer.name,
            role=reviewer.role,
            agencies=agencies,
            never_shared=self.never_shared,
            identifier_types=frozenset(identifier_types),
        )

    def rows_as_sent(
        self, config: SourceConfig, checksums: list[str], row_numbers: list[int]
    ) -> list[dict[str, Any]]:
        """The rows (by row number) of the night's archived files with these checksums, as
        the night's extract read them; none when a file is no longer in the archive."""
        with self._sent_lock:
            con = self._files_as_sent(config, checksums)
            if con is None:
                return []
            result = con.execute(
                f"SELECT * FROM {quote_identifier(raw_table_name(config.source))}"
                f" WHERE {ROW_NUMBER} IN (SELECT unnest($rows))",
                {"rows": row_numbers},
            )
            names = [column[0] for column in result.description]
            return [dict(zip(names, values, strict=True)) for values in result.fetchall()]

    def _files_as_sent(
        self, config: SourceConfig, checksums: list[str]
    ) -> duckdb.DuckDBPyConnection | None:
        key = ";".join(checksums)
        cached = self._sent.get(config.source)
        if cached is not None and cached[0] == key:
            return cached[1]
        paths = [self._archived(config.source, checksum) for checksum in checksums]
        if any(path is None for path in paths):
            return None
        files = [
            archived_file(config.source, path, checksum)
            for path, checksum in zip(paths, checksums, strict=True)
            if path is not None
        ]
        con = duckdb.connect()
        try:
            load_files(con, config, files)
        except (LinkageError, duckdb.Error, OSError):
            con.close()
            return None
        if cached is not None:
            cached[1].close()
        self._sent[config.source] = (key, con)
        return con

    def _archived(self, source: str, checksum: str) -> Path | None:
        """A night's archived copy of a file, by checksum (archive_file names it so)."""
        pattern = f"*/{source}/{checksum[:12]}_*"
        found = sorted(self.project.archive_dir.glob(pattern))
        return next((path for path in found if not path.name.endswith(".partial")), None)

    def model_weights(self, model_path: Path) -> ModelWeights | None:
        """The saved model's weights (None if the file is gone), read once per model."""
        if model_path not in self._models:
            try:
                model = json.loads(model_path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                return None
            self._models[model_path] = ModelWeights.from_model(model)
        return self._models[model_path]

    def changed_decisions(self, con: duckdb.DuckDBPyConnection) -> list[ChangedDecision]:
        """`linkage.review.changed_decisions`, kept until the warehouse's state moves on
        (it reads every decided record: worth doing once a night, not once a page)."""
        state = decisions_state(con)
        if self._changed is None or self._changed[0] != state:
            self._changed = (state, changed_decisions(con))
        return self._changed[1]

    def prepare_warehouse(self) -> None:
        """Create the review tables and columns a warehouse made before them lacks."""
        with self._warehouse_lock:
            open_warehouse(self.project.warehouse, self.project.identifier_registry()).close()

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The warehouse, read-only, for one page."""
        with self._warehouse_lock:
            con = connect_warehouse(self.project.warehouse, read_only=True)
            try:
                yield con
            finally:
                con.close()

    @contextmanager
    def writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The warehouse, writable, for one decision."""
        with self._warehouse_lock:
            con = connect_warehouse(self.project.warehouse)
            try:
                yield con
            finally:
                con.close()
