"""Claims -> ``reports/<paper>/`` (README.md, results.json, figures/*.png) and the same to W&B; verification.

- :mod:`.relations`: relations over measured numbers, judged with a seeded paired bootstrap (holds / fails /
  inconclusive);
- :mod:`.claims`: paper values, claims, sanity rows, registered deviations with diagnostics;
- :mod:`.validity`: validity of an evaluation protocol in a run (oracle, random, separation, saturation);
- :mod:`.report`: the report as one unit (rendered from results.json, written atomically, file hashes);
- :mod:`.verify`: ``check`` (claims rebuilt from the code, hashes, freshness) and numeric diffs of two reports.
"""

from lightning_modules.reporting.claims import (
    DEVIATION,
    KINDS,
    NOT_VALID,
    SANITY,
    STATUSES,
    Claim,
    Deviation,
    Diagnostic,
    PaperValue,
    apply_deviations,
    apply_validity,
    register,
)
from lightning_modules.reporting.relations import FAILS, HOLDS, INCONCLUSIVE, Interval, Relation, Verdict, judge
from lightning_modules.reporting.report import (
    EXAMPLES_FILE,
    SCHEMA_VERSION,
    Report,
    count_statuses,
    environment_info,
    file_sha256,
    find_reports,
    jsonable,
    load_examples,
    load_results,
    markdown_table,
    paper_source_files,
    paper_source_sha256,
    rebuild,
    recover_report_dir,
    render_readme,
    render_report,
    rerender,
    swap_in,
    write_index,
)
from lightning_modules.reporting.validity import (
    VALIDITY_CAPTION,
    add_validity_table,
    pointing_specs,
    protocol_spec,
    protocol_verdicts,
    validity_rows,
)
from lightning_modules.reporting.verify import check_results, diff_reports
from lightning_modules.utils import REPO_ROOT

__all__ = [
    "DEVIATION", "FAILS", "HOLDS", "INCONCLUSIVE", "KINDS", "NOT_VALID", "VALIDITY_CAPTION", "REPO_ROOT", "add_validity_table", "SANITY", "SCHEMA_VERSION", "STATUSES", "Claim",
    "Deviation", "Diagnostic", "Interval", "PaperValue", "Relation", "Report", "Verdict", "apply_deviations",
    "apply_validity", "check_results", "count_statuses", "diff_reports", "environment_info", "file_sha256", "find_reports", "judge",
    "jsonable", "load_results", "markdown_table", "paper_source_files", "paper_source_sha256", "pointing_specs", "protocol_spec", "protocol_verdicts", "recover_report_dir",
    "register", "render_readme", "rerender", "swap_in", "validity_rows", "write_index",
]
