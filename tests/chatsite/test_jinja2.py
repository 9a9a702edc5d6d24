"""The site's Jinja2 environment."""

from django.template import engines


def test_a_template_sees_the_environments_globals_and_keeps_its_own_to_itself():
    env = engines["jinja2"].env  # type: ignore[attr-defined]
    own = env.from_string("{{ shade }} {{ max_chars() > 0 }}", globals={"shade": "teal"})

    assert own.render() == "teal True"
    assert "shade" not in env.globals  # another template never sees it
    assert env.from_string("{{ shade is defined }}").render() == "False"
