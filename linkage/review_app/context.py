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

import duckdb

from linkage.config import ProjectConfig, SourceConfig, load_sharing_rules
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
