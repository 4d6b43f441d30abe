"""nbgrader configuration of the course (run nbgrader from the repository root).

solutions/<hw>/<hw>.ipynb is the instructor source; `make assignments` writes the student
release to assignments/<hw>/. gradebook.db, submitted/, autograded/ and feedback/ are
created here by nbgrader and are not tracked by git.
"""

import os
import sys

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

ROOT = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.root = ROOT
c.CourseDirectory.course_id = "lmcourse"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(ROOT, "gradebook.db")

# The homework notebooks' kernelspec is "python3": in the course venv it is the venv's own
# Python (where lmcourse is installed), see `jupyter kernelspec list`.
c.ExecutePreprocessor.kernel_name = "python3"
# Cut an infinite loop: a cell running longer than this is interrupted, marked as an error
# (0 points for that test) and grading goes on with the next cell.
c.ExecutePreprocessor.timeout = 60
c.ExecutePreprocessor.interrupt_on_timeout = True
c.ExecutePreprocessor.startup_timeout = 120

# `nbgrader zip_collect HW`: files named <student>_[anything_]<hw>.ipynb in the archives of
# downloaded/<hw>/archive/ go to submitted/<student>/<hw>/<hw>.ipynb (nbgrader matches this
# regular expression against the file's ABSOLUTE path, hence the leading `.*/`). Adapt it to
# your LMS's file names (see book/instructors.md).
c.ZipCollectApp.collector_plugin = "nbgrader.plugins.zipcollect.FileNameCollectorPlugin"
c.FileNameCollectorPlugin.named_regexp = (
    r".*/(?P<student_id>[A-Za-z0-9.-]+)_(?:[^/]*_)?(?P<file_id>hw[0-9]+_[a-z_]+\.ipynb)$"
)

# `nbgrader export`: nbgrader's CSV plus the hand-grading status (scripts/nbgrader_export.py).
sys.path.insert(0, os.path.join(ROOT, "scripts"))
c.ExportApp.plugin_class = "nbgrader_export.PendingAwareCsvExportPlugin"

# Grading runs with scripts/grade.py (`make grade HW=...`), outside the students' kernels;
# plain `nbgrader autograde` would run student code with your permissions. The settings
# below only matter if you run it anyway.

# The setup cell prints one line; nothing should be hidden from students in feedback.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.Exchange.assignment_dir = ROOT
