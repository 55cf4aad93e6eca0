"""Self-contained HTML pages shared by the fine-tuning / evaluation report and the explanation report."""
