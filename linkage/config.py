"""Load and validate the project and source (agency) configuration files.

Configuration is data: onboarding an agency means adding one YAML file under the
project's sources directory, never a code change.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from linkage.errors import ConfigError
from linkage.identifiers import (
    DEFAULT_REGISTRY_FILE,
    IdentifierRegistry,
    default_registry,
    load_registry,
)
from linkage.schema import canonical_column_names
from linkage.yaml_file import read_yaml


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The pseudo-format for a date a spreadsheet wrote as its day number (37622 = 2003-01-01).
EXCEL_SERIAL = "excel_serial"


def _field_shorthand(value: object) -> object:
    """`Forename` means {column: Forename}; `[A, B]` means {columns: [A, B]}."""
    if isinstance(value, str):
        return {"column": value}
    if isinstance(value, list):
        return {"columns": value}
    return value


class FieldSpec(StrictModel):
    """Where one canonical input comes from in an agency's file."""

    column: str | None = None
    columns: list[str] | None = None
    constant: str | None = None
    codes: dict[str, str | None] | None = None  # raw code -> canonical code (unlisted -> NULL)
    # Date fields: strptime formats, tried in order (default %Y-%m-%d). A time of day after
    # the date (01/02/2001 00:00:00, 2001-02-01T00:00) is dropped without a format for it:
    # the canonical dates are days. "excel_serial" (EXCEL_SERIAL) among them also reads
    # spreadsheet day numbers (linkage/stage.py, EXCEL_SERIAL_SQL).
    formats: list[str] | None = None

    @model_validator(mode="after")
    def _exactly_one_origin(self) -> FieldSpec:
        origins = [self.column, self.columns, self.constant]
        if sum(origin is not None for origin in origins) != 1:
            raise ValueError("give exactly one of column, columns or constant")
        return self

    @property
    def source_columns(self) -> list[str]:
        if self.column is not None:
            return [self.column]
        return list(self.columns or [])


Spec = Annotated[FieldSpec, BeforeValidator(_field_shorthand)]

# How a whole name in one field is ordered (linkage/stage.py, split_full_name): `auto` reads
# "SMITH, John" as surname first, "John SMITH" and "SMITH John" by the capitals, and any
# other as forenames first.
NameOrder = Literal["auto", "forename_first", "surname_first"]


class FullNameSpec(FieldSpec):
    """A person's whole name in one field, split into forenames and surname."""

    order: NameOrder = "auto"


FullName = Annotated[FullNameSpec, BeforeValidator(_field_shorthand)]
SPLIT_FROM_FULL_NAME = ("forename", "surname")  # the fields a full name fills


class PersonFields(StrictModel):
    """Mapping of the agency's columns onto the canonical person fields."""

    # the whole name in one field: it fills forename and surname where they are not mapped
    # or empty (words after the first forename become middle names, as in `forename`)
    full_name: FullName | None = None
    forename: Spec | None = None
    middle_names: Spec | None = None
    preferred_forename: Spec | None = None
    surname: Spec | None = None
    other_surnames: Spec | None = None
    date_of_birth: Spec | None = None
    sex: Spec | None = None
    address: Spec | None = None
    town: Spec | None = None
    postcode: Spec | None = None

    def made_from(self, name: str) -> FieldSpec | None:
        """Where a canonical field comes from: its own mapping, or the full name."""
        spec = getattr(self, name)
        if spec is None and name in SPLIT_FROM_FULL_NAME:
            return self.full_name
        return spec


class ConcernFields(StrictModel):
    """How a row carries a concern (case, flag, incident or status)."""

    type: Spec
    status: Spec = FieldSpec(constant="open")
    opened: Spec | None = None
    closed: Spec | None = None
    # An event (an incident) has no closing date: it counts as open this many days after
    # it was opened. None: open until the agency closes it.
    open_for_days: int | None = Field(default=None, gt=0)


Encoding = Literal["utf-8", "latin-1", "cp1252"]


# Other names people give the workbook format.
WORKBOOK_FORMATS = {"xlsx", "xlsm", "xlsb", "xls", "ods", "excel"}


class FileSpec(StrictModel):
    pattern: str  # relative to the landing dir; {run_date} is replaced by YYYY-MM-DD
    format: Literal["csv", "parquet", "jsonl", "workbook"] = "csv"
    sheet: str | int | None = None  # a workbook's sheet, by name or from 0 (default: the first)
    delimiter: str = ","
    quote: str = '"'
    encoding: Encoding = "utf-8"
    # A line not valid in `encoding` is read in this one and its row flagged (one Windows
    # user's edit in a UTF-8 export); null: such a row is quarantined instead.
    fallback_encoding: Encoding | None = "cp1252"
    header: bool = True

    @field_validator("format", mode="before")
    @classmethod
    def _workbook_by_any_name(cls, value: object) -> object:
        if isinstance(value, str) and value.lower() in WORKBOOK_FORMATS:
            return "workbook"
        return value


def column_key(name: str) -> str:
    """A column name as matched against a file's header: case, surrounding and repeated
    whitespace, and a byte-order mark do not count."""
    return " ".join(name.replace("\ufeff", "").split()).casefold()


class DriftSettings(StrictModel):
    """When a source's night differs from its last good nights enough to hold it.

    Each bound holds the source only when at least `min_rows` rows are affected, so a
    small extract's noise never holds it. Rates are shares of the night's rows.
    """

    enabled: bool = True
    baseline_nights: int = Field(default=5, ge=1)  # the source's last used nights compared
    failure_jump: float = Field(default=0.05, gt=0, le=1)  # a field's failing share rises by
    fill_drop: float = Field(default=0.2, gt=0, le=1)  # a field's filled share falls by...
    fill_halved_from: float = Field(default=0.05, gt=0, le=1)  # ...or halves from at least
    new_codes: float = Field(default=0.05, gt=0, le=1)  # rows with codes never seen before
    rows_growth: float = Field(default=3.0, gt=1)  # rows read exceed the most on a good night by
    min_rows: int = Field(default=20, ge=1)
    ignore: list[str] = []  # fields whose change is intended (e.g. an agency stops a field)


class SourceConfig(StrictModel):
    source: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    file: FileSpec
    record_id: str
    one_record_per_person: bool = False
    # file-level check: fail if rows < ratio * rows of the last good night
    min_rows_ratio: float = Field(default=0.5, ge=0, le=1)
    fields: PersonFields
    # registered identifier type (schemas/identifiers.yaml) -> the column holding it
    identifiers: dict[str, Spec] = {}
    concern: ConcernFields | None = None
    drift: DriftSettings | None = None  # replaces the project's drift settings for this source
    config_path: Path | None = None

    @model_validator(mode="after")
    def _columns_distinct_as_matched(self) -> SourceConfig:
        seen: dict[str, str] = {}
        for column in self.required_columns():
            other = seen.setdefault(column_key(column), column)
            if other != column:
                raise ValueError(
                    f"columns {other!r} and {column!r} differ only in case or spacing:"
                    " file headers are matched ignoring both"
                )
        return self

    def required_columns(self) -> list[str]:
        """Every column of the file the config relies on (record id first)."""
        specs = [getattr(self.fields, name) for name in PersonFields.model_fields]
        specs += list(self.identifiers.values())
        if self.concern is not None:
            specs += [getattr(self.concern, name) for name in ConcernFields.model_fields]
        columns = [self.record_id]
        for spec in specs:
            for column in spec.source_columns if isinstance(spec, FieldSpec) else []:
                if column not in columns:
                    columns.append(column)
        return columns

    def file_pattern(self, run_date: date) -> str:
        return self.file.pattern.replace("{run_date}", run_date.isoformat())


class LinkageSettings(StrictModel):
    """Thresholds of the link stage (match probabilities under the trained model)."""

    link_threshold: float = Field(default=0.95, gt=0, lt=1)
    review_threshold: float = Field(default=0.5, gt=0, lt=1)
    weak_link: float = Field(default=0.99, gt=0, lt=1)  # persons held by weaker edges: review
    edge_floor: float = Field(default=0.01, gt=0, lt=1)  # edges kept for explanation
    # a prediction block making more pairs per record is tightened or dropped (blocking.py)
    max_pairs_per_record: float = Field(default=10, gt=0)
    review_cap: int = Field(default=2000, ge=0)  # review items queued a night, most at stake first
    model: Path | None = None  # a model-<version>.json; default: the newest in models_dir

    @model_validator(mode="after")
    def _ordered(self) -> LinkageSettings:
        if not self.edge_floor <= self.review_threshold <= self.link_threshold:
            raise ValueError("need edge_floor <= review_threshold <= link_threshold")
        return self


# --- alert rules (schemas/alerts.yaml) -------------------------------------------------


class ConcernCondition(StrictModel):
    """Records of `agencies` carrying one of `types`, open now or within the lookback."""

    agencies: list[str] | Literal["any", "other"] = "any"  # other: not the first condition's
    types: list[str] | Literal["any"] = "any"
    closed_within_days: int = Field(default=0, ge=0)  # open now, or closed this recently
    opened_within_days: int | None = Field(default=None, gt=0)  # and opened this recently


class AlertRule(StrictModel):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    conditions: list[ConcernCondition] = Field(min_length=1)  # each met by a different agency
    max_age: int | None = None  # the person's best-known age at the night, if set
    min_confidence: float = Field(default=0.99, gt=0, le=1)
    notify: list[str] | Literal["holders"] = "holders"  # holders: every agency relied on


class AlertRules(StrictModel):
    rules: list[AlertRule]

    @model_validator(mode="after")
    def _unique_ids(self) -> AlertRules:
        ids = [rule.id for rule in self.rules]
        if len(ids) != len(set(ids)):
            raise ValueError(f"rule ids must be unique: {ids}")
        return self


# --- data-sharing rules (schemas/sharing.yaml) -----------------------------------------


class FlagSpec(StrictModel):
    """A yes/no fact about a person an agency may be told."""

    description: str
    known_to: str | None = None  # the person has a record at this agency
    concern_types: list[str] | Literal["any"] | None = None  # ...an open concern of these
    concern_elsewhere: bool = True  # concerns count only when held by another agency

    @model_validator(mode="after")
    def _one_kind(self) -> FlagSpec:
        if (self.known_to is None) == (self.concern_types is None):
            raise ValueError("a flag is either known_to: AGENCY or concern_types: [...]")
        return self


class AgencyShare(StrictModel):
    flags: list[str] = []
    fields: dict[str, list[str]] = {}  # other agency -> canonical columns of its records


class SharingRules(StrictModel):
    flags: dict[str, FlagSpec]
    agencies: dict[str, AgencyShare]
    # columns of an agency's records that never leave it (Caldicott: health clinical detail)
    never_shared: dict[str, list[str]] = {}

    @model_validator(mode="after")
    def _grants_are_known_and_allowed(self) -> SharingRules:
        for agency, share in self.agencies.items():
            unknown = sorted(set(share.flags) - set(self.flags))
            if unknown:
                raise ValueError(f"agencies.{agency}.flags: unknown flags {unknown}")
            for holder, columns in share.fields.items():
                if holder == agency:
                    continue
                barred = sorted(set(columns) & set(self.never_shared.get(holder, [])))
                if barred:
                    raise ValueError(
                        f"agencies.{agency}.fields.{holder}: {barred} never leave {holder}"
                    )
        return self


def load_alert_rules(path: Path) -> AlertRules:
    """Load the alert rules, with errors naming the file and key."""
    try:
        return AlertRules(**read_yaml(path))
    except ValidationError as error:
        raise ConfigError(f"{path}: invalid alert rules: {_describe(error)}") from None


def load_sharing_rules(path: Path, registry: IdentifierRegistry | None = None) -> SharingRules:
    """Load the data-sharing rules; a grant of a never-shared or unknown column is an error."""
    try:
        rules = SharingRules(**read_yaml(path))
    except ValidationError as error:
        raise ConfigError(f"{path}: invalid sharing rules: {_describe(error)}") from None
    known = set(canonical_column_names(registry))
    for agency, share in rules.agencies.items():
        for holder, columns in share.fields.items():
            unknown = sorted(set(columns) - known)
            if unknown:
                raise ConfigError(
                    f"{path}: invalid sharing rules: agencies.{agency}.fields.{holder}:"
                    f" unknown columns {unknown}"
                )
    return rules


# --- the analysts' review application (`linkage serve`) --------------------------------

ALL_AGENCIES_ROLE = "all"  # the one role when the project config names none
# A header field name (RFC 9110 token), so a typo cannot match a header nobody sends.
HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"


class ReviewSettings(StrictModel):
    """Who may review what, and how the review application trusts its users."""

    # role -> the agencies (source names) whose records it may see; none: one role `all`
    roles: dict[str, list[str]] = {}
    session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)  # signed out after
    session_max_hours: float = Field(default=8, gt=0, le=7 * 24)  # however active
    # The reverse proxy's authenticated-user header; believed only from trusted_proxies.
    proxy_user_header: str | None = Field(default=None, pattern=HEADER_NAME)
    trusted_proxies: list[str] = ["127.0.0.1", "::1"]
    secure_cookies: bool = False  # true when served over https (behind the proxy)
    page_size: int = Field(default=50, ge=1, le=500)  # queue items per page

    @model_validator(mode="after")
    def _roles_name_agencies(self) -> ReviewSettings:
        for role, agencies in self.roles.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]*", role):
                raise ValueError(f"roles: {role!r}: a role is lower case letters, digits, _")
            if not agencies:
                raise ValueError(f"roles.{role}: name at least one agency")
        for address in self.trusted_proxies:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"trusted_proxies: {address!r} is not an IP address") from None
        return self


# How postcodes are kept: "uk" nulls what is not a UK postcode (with a postcode_issue);
# "as_written" keeps any postcode, upper case, for projects with addresses abroad.
PostcodeFormat = Literal["uk", "as_written"]


class ProjectConfig(StrictModel):
    """Where everything lives; relative paths are relative to the config file."""

    landing_dir: Path
    sources: list[Path]  # source config files or globs
    warehouse: Path
    output_dir: Path
    archive_dir: Path
    config_path: Path
    models_dir: Path | None = None  # trained models; default <warehouse dir>/models
    linkage: LinkageSettings = LinkageSettings()
    alert_rules: Path | None = None  # schemas/alerts.yaml; no alerts when unset
    sharing_rules: Path | None = None  # schemas/sharing.yaml; no exports when unset
    identifiers: Path = DEFAULT_REGISTRY_FILE  # the identifier registry
    postcode_format: PostcodeFormat = "uk"
    drift: DriftSettings = DriftSettings()  # a source's night unlike its last good ones is held
    review: ReviewSettings = ReviewSettings()  # the review application (`linkage serve`)

    @property
    def model_dir(self) -> Path:
        return self.models_dir or self.warehouse.parent / "models"

    def source_configs(self) -> list[SourceConfig]:
        return load_sources(self.sources, self.identifier_registry())

    def identifier_registry(self) -> IdentifierRegistry:
        return load_registry(self.identifiers)

    def review_roles(self) -> dict[str, frozenset[str]]:
        """role -> agencies it may see; every agency must be a configured source."""
        sources = sorted(config.source for config in self.source_configs())
        if not self.review.roles:
            return {ALL_AGENCIES_ROLE: frozenset(sources)}
        roles = {}
        for role, agencies in self.review.roles.items():
            unknown = sorted(set(agencies) - set(sources))
            if unknown:
                raise ConfigError(
                    f"{self.config_path}: review.roles.{role}: unknown agencies {unknown}"
                    f" (the sources are: {', '.join(sources)})"
                )
            roles[role] = frozenset(agencies)
        return roles

    def event_concern_days(self) -> dict[str, int]:
        """Sources whose concerns are events -> days one counts as open (concern.open_for_days)."""
        return {
            config.source: config.concern.open_for_days
            for config in self.source_configs()
            if config.concern is not None and config.concern.open_for_days is not None
        }


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in error.errors()
    )


def load_source(path: Path) -> SourceConfig:
    """Load one agency's source config, with errors naming the file and key."""
    raw = read_yaml(path)
    try:
        return SourceConfig(**raw, config_path=path)
    except ValidationError as error:
        raise ConfigError(f"{path}: invalid source config: {_describe(error)}") from None


def load_sources(
    paths: list[Path], registry: IdentifierRegistry | None = None
) -> list[SourceConfig]:
    """Every source config the paths (or globs) name; identifiers must be registered."""
    registry = registry or default_registry()
    files: list[Path] = []
    for path in paths:
        matches = sorted(path.parent.glob(path.name)) if "*" in path.name else [path]
        files.extend(matches)
    configs = [load_source(path) for path in files]
    for config in configs:
        unknown = sorted(set(config.identifiers) - set(registry.names))
        if unknown:
            raise ConfigError(
                f"{config.config_path}: identifiers: {unknown} not in the identifier registry"
                f" {registry.path} (registered: {', '.join(registry.names)})"
            )
    names = [config.source for config in configs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"source names declared twice: {', '.join(duplicates)}")
    if not configs:
        raise ConfigError(f"no source configs found in {[str(p) for p in paths]}")
    return sorted(configs, key=lambda config: config.source)


def load_project(path: Path) -> ProjectConfig:
    """Load the project config; relative paths resolve against its directory."""
    path = Path(path).resolve()
    raw = read_yaml(path)
    base = path.parent
    for key in (
        "landing_dir",
        "warehouse",
        "output_dir",
        "archive_dir",
        "models_dir",
        "alert_rules",
        "sharing_rules",
        "identifiers",
    ):
        if key in raw:
            raw[key] = base / raw[key]
    if isinstance(raw.get("linkage"), dict) and "model" in raw["linkage"]:
        raw["linkage"]["model"] = base / raw["linkage"]["model"]
    if isinstance(raw.get("sources"), str):
        raw["sources"] = [raw["sources"]]
    raw["sources"] = [base / source for source in raw.get("sources", [])]
    try:
        return ProjectConfig(**raw, config_path=path)
    except ValidationError as error:
        raise ConfigError(f"{path}: invalid project config: {_describe(error)}") from None
