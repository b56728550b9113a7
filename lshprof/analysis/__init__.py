"""Analysis: what runs mean. Summaries per method and fraction (``summary``), the paper's
claims judged on them (``claims``), the regression check against a baseline (``check``) and
the HTML report (``report``). Reads results; imports the experiment layer and below."""
