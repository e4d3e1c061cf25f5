"""complexface: generate and study complex facial expressions with FACS Action Unit control."""
