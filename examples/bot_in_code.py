"""A bot defined in code, no folder needed: its system template, FAQ and settings are Python
values, checked as `botkit check` checks a folder. It answers each question given on the
command line, as it is written.

    python examples/bot_in_code.py "When are you open?" "Can I get a refund?"
    OPENAI_API_KEY=sk-… python examples/bot_in_code.py "Do you ship to Norway?"
"""

from __future__ import annotations

import asyncio
import os
import sys

from pydantic import SecretStr

from botkit import BotApp, BotDefinition, IncomingMessage, LLMSettings, Settings, StoreSettings

SHOP = BotDefinition.from_values(
    "shop",
    # system.md.j2: the snippets that best match the question are in `faq`.
    system="""\
{# Support assistant for Acme Boxes #}
You are the support assistant of {{ vars.company }}. Answer briefly, from these notes:
{% for snippet in faq %}
Q: {{ snippet.question }}
A: {{ snippet.answer }}
{% endfor %}
If the notes do not answer the question, offer to put the customer in touch with a person.
""",
    # faq/NAME.md: values, or a file's text (front matter, then the answer).
    faq={
        "hours": {
            "question": "When are you open?",
            "questions": ["What are your opening hours?", "Are you open on Sunday?"],
            "answer": "We are open Monday to Friday, 9:00 to 17:00.",
        },
        "refund": """\
---
question: Can I get a refund?
questions: [I want my money back, How do returns work?]
---
Refunds are possible within **30 days** of purchase: reply with your order number.
""",
    },
    # bots/NAME.toml: any of its keys.
    settings={"temperature": 0.3, "max_tokens": 300, "vars": {"company": "Acme Boxes"}},
    # The other templates, by name.
    templates={"welcome": "Hi{% if user.name %} {{ user.name }}{% endif %}! Ask me anything."},
)


async def main(questions: list[str]) -> None:
    # Plain values: an embedded bot reads no environment unless told to. With a key it asks
    # the model; without one it answers from its FAQ.
    key = os.environ.get("OPENAI_API_KEY")
    settings = Settings(
        llm=LLMSettings(api_key=SecretStr(key) if key else None),
        store=StoreSettings(url="memory://"),  # conversations kept in memory
    )
    async with BotApp(settings=settings, bots=[SHOP]) as bots:
        pipeline = bots.pipelines["shop"]
        for question in questions:
            message = IncomingMessage(
                channel="console", bot="shop", conversation_id="demo", user_id="demo", text=question
            )
            print(f"> {question}")
            async for delta in pipeline.stream(message):
                print(delta, end="", flush=True)
            print("\n")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:] or ["When are you open?"]))
