"""`botkit new NAME`: a prompt folder and settings file that work at once."""

from __future__ import annotations

from pathlib import Path

from botkit.errors import ConfigError, Problem
from botkit.home import BOT_NAME, BotHome

_SYSTEM = """\
{# Support assistant for {{NAME}} #}
You are the customer-support assistant of {{ vars.company }}, talking to
{{ user.name or "a customer" }} on {{ channel }}. Today is {{ now.strftime("%A, %d %B %Y") }}.

Answer briefly and kindly, in the customer's language{% if user.language %}
(their app is set to "{{ user.language }}"){% endif %}. Use only the facts below and
the conversation so far. If they do not answer the question, say so and offer
to pass the question to a person on the team; never invent policies or prices.
{% if faq %}

Facts from the FAQ, most relevant first:
{% for snippet in faq %}

## {{ snippet.question }}
{{ snippet.answer }}
{% endfor %}
{% endif %}
"""

_WELCOME = """\
Hi{% if user.name %} {{ user.name }}{% endif %}! I'm the {{ vars.company }} assistant.
Ask me anything about our service, or type /help to see what I can do.
"""

_FALLBACK = """\
Sorry, I don't know the answer to that yet. A person from the {{ vars.company }}
team can help: write to {{ vars.support_email }} and we'll get back to you.
"""

_FAQ = {
    "contact.md": """\
---
question: How can I contact a person?
questions:
  - Can I talk to a human?
  - What is your support email?
  - How do I reach your support team?
tags: [support, contact, email]
---
Write to {{EMAIL}} and a person from our support team will answer within one working day.
""",
    "hours.md": """\
---
question: When are you open?
questions:
  - What are your opening hours?
  - Are you open on weekends?
tags: [hours]
---
Our team works Monday to Friday, 9:00 to 17:00. This assistant answers around the clock.
""",
}

_TESTS = """\
# Conversations {{NAME}} must hold: `botkit test {{NAME}}` runs them (offline, from the FAQ).
# Each turn may expect: faq (the snippet chosen first), reply_contains, reply_not_contains,
# reply_matches (a regular expression), kind (answer, fallback, command, limit, handoff),
# handoff: true, and judge: "…" (checked by the model with `botkit test --llm`).

- name: opening hours
  turns:
    - user: What are your opening hours?
      faq: hours
      reply_contains: ["Monday to Friday"]
    - user: And how can I reach a person?
      faq: contact
      reply_contains: ["{{EMAIL}}"]

- name: a question the FAQ does not answer
  turns:
    - user: Do you sell gift cards?
      kind: fallback
      reply_contains: ["{{EMAIL}}"]

- name: help
  turns:
    - user: /help
      kind: command
      reply_contains: ["/reset"]
"""

_SETTINGS = """\
description = "Support assistant for {{NAME}}"
# model = "gpt-4o-mini"
# temperature = 0.3
max_tokens = 512
context_tokens = 8192
faq_top_k = 3
idle_reset = "24h"

[vars]
company = "{{NAME}}"
support_email = "{{EMAIL}}"
"""


def create_bot(home: BotHome, name: str) -> list[Path]:
    """Write `prompts/NAME/` and `bots/NAME.toml`; refuse to overwrite anything."""
    folder = home.prompts / name
    settings = home.settings_path(name)
    if not BOT_NAME.match(name):
        raise ConfigError(
            [Problem(folder, f"invalid bot name '{name}': use letters, digits, - and _")]
        )
    for path in (folder, settings):
        if path.exists():
            raise ConfigError([Problem(path, "already exists; choose another name")])
    email = f"support@{name.lower().replace('_', '-')}.example"
    files = {
        folder / "system.md.j2": _SYSTEM,
        folder / "welcome.md.j2": _WELCOME,
        folder / "fallback.md.j2": _FALLBACK,
        folder / "tests" / "basics.yaml": _TESTS,
        settings: _SETTINGS,
        **{folder / "faq" / filename: text for filename, text in _FAQ.items()},
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("{{NAME}}", name).replace("{{EMAIL}}", email), "utf-8")
    return list(files)
