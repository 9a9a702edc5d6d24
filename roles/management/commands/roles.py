import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from roles.selectors import role_export
from roles.services import RoleImportError, RoleImportResult, role_import


class Command(BaseCommand):
    help = (
        "Export every role as JSON, or import roles from such a file by slug: missing roles "
        "are created, changed ones updated, none deleted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        export = actions.add_parser("export", help="write every role, active or not, as JSON")
        export.add_argument("--file", type=Path, help="write to this file instead of stdout")
        load = actions.add_parser("import", help="create or update roles from a JSON export")
        load.add_argument("file", type=Path, help='a JSON file: {"roles": [...]} or a list of roles')
        load.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "export":
            self.export(path=options["file"])
        else:
            self.import_roles(path=options["file"], dry_run=options["dry_run"])

    def export(self, *, path: Path | None) -> None:
        roles = role_export()
        text = json.dumps({"roles": roles}, ensure_ascii=False, indent=2)
        if path is None:
            self.stdout.write(text)
            return
        try:
            path.write_text(text + "\n", encoding="utf-8")
        except OSError as error:
            raise CommandError(f"Cannot write {path}: {error.strerror}") from None
        self.stdout.write(f"Wrote {len(roles)} role(s) to {path}")

    def import_roles(self, *, path: Path, dry_run: bool) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror}") from None
        except UnicodeDecodeError:
            raise CommandError(f"{path} is not UTF-8 text.") from None
        except json.JSONDecodeError as error:
            raise CommandError(f"{path} is not valid JSON: {error}") from None
        try:
            result = role_import(data=data, dry_run=dry_run)
        except RoleImportError as error:
            raise CommandError(f"{path}: nothing imported.\n{error}") from None
        self.report(result)

    def report(self, result: RoleImportResult) -> None:
        create, update = ("would create", "would update") if result.dry_run else ("created", "updated")
        for outcome in result.outcomes:
            if outcome.action == "created":
                self.stdout.write(f"{create} {outcome.slug}")
            elif outcome.action == "updated":
                self.stdout.write(f"{update} {outcome.slug}: {', '.join(outcome.fields)}")
            else:
                self.stdout.write(f"unchanged {outcome.slug}")
        created, updated, unchanged = len(result.created), len(result.updated), len(result.unchanged)
        if result.dry_run:
            self.stdout.write(
                f"Dry run, nothing written: {created} to create, {updated} to update, {unchanged} unchanged."
            )
        else:
            self.stdout.write(
                f"Imported {len(result.outcomes)} role(s): "
                f"{created} created, {updated} updated, {unchanged} unchanged."
            )
