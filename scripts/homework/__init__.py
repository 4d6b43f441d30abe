"""One module per homework: CELLS (the notebook), CHEATS and LOOPS (grading demo)."""
