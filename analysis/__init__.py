"""Tables, figures and reports from the run records of experiments and from Optuna studies."""
