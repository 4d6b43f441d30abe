"""Static matplotlib figures for the book (each widget's default state is drawn here)."""
