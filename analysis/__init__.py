"""Tables, figures and reports from recorded runs (built with the analysis issue)."""
