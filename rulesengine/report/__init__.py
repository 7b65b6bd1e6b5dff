"""``rulesengine report``: one self-contained HTML page (or its JSON) per config."""
