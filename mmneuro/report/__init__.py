"""The run's report: figures (``figures``) and one self-contained HTML page (``html.write_report``)."""
