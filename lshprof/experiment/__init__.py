"""The experiment layer: scenarios (``scenario``), the sweep's cells and their keys
(``sweep``), running cells through any executor (``execute``), the run-level runner
(``runner``) and the results store (``results``)."""
