"""scripts/backup -> wipe -> scripts/restore: the message history comes back row for row."""

import stat

from tests.functional import Client, unique_room

HISTORY = (
    "SELECT r.name, r.last_id, m.seq, m.text, m.sent_at FROM chat_message m "
    "JOIN chat_room r ON r.id = m.room_id ORDER BY r.name, m.seq"
)


async def test_backup_wipe_restore_round_trip(stack, tmp_path):
    """Rows equal after restore; the room continues at the next id; clients resume from 0."""
    room = unique_room("backup")
    async with Client(stack.base_url, room) as client:
        for i in range(5):
            await client.send_message(f"keep me {i} — 보존")
            await client.recv_message(f"keep me {i} — 보존", 10)
    before = stack.psql(HISTORY)
    assert room in before and before.count("\n") >= 4

    # A folder that exists world-readable: the backup makes it private, the dump 0600.
    backups = tmp_path / "backups"
    backups.mkdir()
    backups.chmod(0o755)
    stack.env["BACKUP_DIR"] = str(backups)
    out = stack.script("backup").stdout
    dumps = sorted(backups.glob("chat-*.dump"))
    assert len(dumps) == 1, f"expected one dump in {backups}, found {dumps}: {out}"
    modes = (stat.S_IMODE(backups.stat().st_mode), stat.S_IMODE(dumps[0].stat().st_mode))
    assert modes == (0o700, 0o600), f"expected a 0700 folder and a 0600 dump, found {modes}: {out}"

    stack.psql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    assert stack.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").strip() == "0"

    stack.script("restore", "--yes", str(dumps[0]))
    assert stack.psql(HISTORY) == before

    async with Client(stack.base_url, room, after=0) as client:
        ids = await client.recv_message_ids_until(5, 10)
        assert ids == [1, 2, 3, 4, 5]
        await client.send_message("after the restore")
        assert (await client.recv_message("after the restore", 10))["id"] == 6
