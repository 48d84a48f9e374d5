"""examples/bot_in_code.py, run as its docstring says: a bot defined in code answers the
questions on its command line, from its FAQ (no key in the environment)."""

from __future__ import annotations

import subprocess
import sys

from tests.examples import EXAMPLES


def test_it_answers_each_question_from_its_faq() -> None:
    questions = ["When are you open?", "I want my money back", "Do you sell cars?"]
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "bot_in_code.py"), *questions],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n\n")[:3] == [
        "> When are you open?\nWe are open Monday to Friday, 9:00 to 17:00.",
        "> I want my money back\nRefunds are possible within **30 days** of purchase: "
        "reply with your order number.",
        "> Do you sell cars?\nI'm sorry, I don't have a good answer to that. A member of our "
        "support team can help: please leave your question and how to reach you, and a "
        "person will get back to you.",
    ]
