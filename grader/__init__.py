"""Grading the lmcourse homework outside the students' kernels (not part of the wheel).

Modules, from the bottom up:

- ``protocol``   messages between the grader and the sandbox (framing, plain data, tags),
  shared by both sides: a copy of it runs in the sandbox;
- ``sandbox``    the bubblewrap command, its limits, the sandbox process;
- ``worker``     the untrusted side: runs the student's cells in the sandbox;
- ``notebook``   splitting a submission from the instructor notebook, the autograded copy;
- ``submission`` grading one submission: proxies, test cells, partial credit, time limits;
- ``gradebook``  nbgrader's gradebook and the feedback text;
- ``similarity`` the similarity report (never changes a score);
- ``course``     the nbgrader course helpers (a temporary course, running nbgrader);
- ``grade``      grading a class (``python -m grader.grade HW``, ``make grade``);
- ``demo``, ``demo_cases``, ``students``  the made-up students of ``make grade-demo``.
"""
