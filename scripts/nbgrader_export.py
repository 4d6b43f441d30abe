"""``nbgrader export`` plugin: the CSV of nbgrader's own exporter plus the hand-grading status.

nbgrader_config.py selects it (``ExportApp.plugin_class``). nbgrader's CSV shows an answer
that still waits for hand grading as an ordinary low score; this one adds two columns,
``needs_manual_grade`` (True while any hand-graded cell of the submission is not graded)
and ``status`` (``pending hand grading``, ``graded`` or ``missing``), and leaves ``score``
empty while grading is pending, so a spreadsheet cannot mistake it for a final grade.
"""

from __future__ import annotations

import csv

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import ExportPlugin

COLUMNS = ["assignment", "student_id", "last_name", "first_name", "email", "timestamp", "status",
           "needs_manual_grade", "raw_score", "late_submission_penalty", "score", "max_score"]


class PendingAwareCsvExportPlugin(ExportPlugin):
    """Write grades.csv (or ``--to``) with the hand-grading status of every submission."""

    def export(self, gradebook: Gradebook) -> None:
        dest = self.to or "grades.csv"
        students = {str(s) for s in self.student}
        assignments = {str(a) for a in self.assignment}
        with open(dest, "w", newline="") as fh:
            writer = csv.DictWriter(fh, COLUMNS)
            writer.writeheader()
            for assignment in gradebook.assignments:
                if assignments and assignment.name not in assignments:
                    continue
                for student in gradebook.students:
                    if students and student.id not in students:
                        continue
                    row = {"assignment": assignment.name, "student_id": student.id,
                           "last_name": student.last_name or "", "first_name": student.first_name or "",
                           "email": student.email or "", "max_score": assignment.max_score}
                    try:
                        sub = gradebook.find_submission(assignment.name, student.id)
                    except MissingEntry:
                        row.update(status="missing", needs_manual_grade=False, timestamp="", raw_score=0.0,
                                   late_submission_penalty=0.0, score=0.0)
                    else:
                        pending = bool(sub.needs_manual_grade)
                        penalty = sub.late_submission_penalty or 0.0
                        row.update(status="pending hand grading" if pending else "graded",
                                   needs_manual_grade=pending, timestamp=sub.timestamp or "",
                                   raw_score=sub.score, late_submission_penalty=penalty,
                                   score="" if pending else max(0.0, sub.score - penalty))
                    writer.writerow(row)
