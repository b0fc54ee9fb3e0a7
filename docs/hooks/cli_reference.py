"""MkDocs hook: the command-line reference is every command's own `--help`, rendered from the typer
app at build time, so the page cannot drift from the code.

A page puts `<!-- visionzoo-cli -->` where the reference goes; the hook replaces it with one
section per command (groups first, then their commands), each the exact text `--help` prints.
"""
from __future__ import annotations

MARKER = "<!-- visionzoo-cli -->"
WIDTH = 100


def _context(cmd, name: str, parent=None):
    return cmd.context_class(cmd, info_name=name, parent=parent, terminal_width=WIDTH, max_content_width=WIDTH)


def _commands(cmd, ctx):
    """(context, command) for `cmd` and everything below it that a user can type (a group's hidden
    default command included: `visionzoo classify PHOTOS` runs it)."""
    yield ctx, cmd
    for name in sorted(getattr(cmd, "commands", {})):
        sub = cmd.commands[name]
        if not sub.hidden or getattr(cmd, "default", None) == name:
            yield from _commands(sub, _context(sub, name, ctx))


def reference() -> str:
    import typer

    from visionzoo.cli import app

    root = typer.main.get_command(app)
    sections = []
    for sub_ctx, cmd in _commands(root, _context(root, "visionzoo")):
        path = sub_ctx.command_path
        summary = (cmd.help or "").strip().split("\n\n")[0].replace("\n", " ")
        if cmd.hidden:
            parent = sub_ctx.parent.command_path
            summary = f"`{parent} ARGS...` runs this command when ARGS does not start with a command name. {summary}"
        sections.append(f"## {path}\n\n{summary}\n\n```text\n{cmd.get_help(sub_ctx).rstrip()}\n```\n")
    return "\n".join(sections)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 - MkDocs hook signature
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, reference())
    return markdown
