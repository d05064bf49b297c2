"""`edgeprune report`: one self-contained HTML page of a compress run."""
from edgeprune.report.page import render, write_report
from edgeprune.report.run import ReportError, Run, load_run

__all__ = ["ReportError", "Run", "load_run", "render", "write_report"]
