"""Hostile conditions (issue 12): edited rows, a full disk, read-only files and mounts, missing
directories, permissions, foreign and damaged files. Each fails with its own typed error, costs no
data and leaves the store usable."""

import hashlib
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from optmem.store import (
    DatabaseNotFound,
    MissingDirectory,
    NotAnOptmemDatabase,
    ReadOnlyStore,
    SchemaMismatch,
    StoreError,
    StoreFull,
    TamperedData,
    TurnPos,
    open_store,
)

REPO = Path(__file__).resolve().parents[1]


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _database(path, turns=("one", "two", "three")):
    """A closed database with a conversation "a": turns and one sealed page."""
    store = open_store(path)
    conv = store.conversation_id("a", create=True)
    for i, text in enumerate(turns):
        store.add_turn(conv, "user", text, float(i))
    store.add_page(conv, first=TurnPos(1, 0), last=TurnPos(2, 3), last_timestamp=1.0, tier="large", layout_json="[]",
                   source_text="one two", text_tokens=2, ledger=[], png=b"\x89PNG page", image_tier="large")
    store.close()
    return path


# -- integrity -------------------------------------------------------------------------------------


def test_turn_text_edited_outside_optmem_is_detected(store_factory):
    store = store_factory()
    conv = store.conversation_id("a", create=True)
    for i, text in enumerate(("one", "two", "three")):
        store.add_turn(conv, "user", text, float(i))
    store_factory.corrupt_turn_text("a", 2, "two, edited")
    reader = store_factory()
    with pytest.raises(TamperedData, match="conversation 'a', turn 2: stored text does not match its sha256"):
        reader.turns(conv)
    assert [t.text for t in reader.turns(conv, 3)] == ["three"]  # the untouched turns still read
    with pytest.raises(TamperedData, match="conversation 'a', turn 2"):
        reader.turns_at(conv, [3, 2])  # the read by ids checks the same way
    assert [t.text for t in reader.turns_at(conv, [3, 1])] == ["one", "three"]


# -- a full disk -----------------------------------------------------------------------------------


def test_a_full_database_is_a_typed_error_and_costs_nothing(tmp_path):
    """SQLite's size limit stands in for the disk: the same SQLITE_FULL, which SQLite answers by
    rolling the transaction back itself."""
    conn = sqlite3.connect(tmp_path / "m.db", check_same_thread=False)
    store = open_store(conn)
    conv = store.conversation_id("a", create=True)
    store.add_turn(conv, "user", "before", 0.0)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 8}")
    with pytest.raises(StoreFull, match="database or disk is full") as error:
        with store.write():
            store.add_turn(conv, "user", "small", 1.0)
            store.add_turn(conv, "user", "x" * 200_000, 2.0)
    assert "no transaction is active" not in str(error.value) and "rolled back whole" in str(error.value)
    with pytest.raises(StoreFull):
        store.add_turn(conv, "user", "y" * 200_000, 3.0)
    assert [t.text for t in store.turns(conv)] == ["before"]  # nothing half-written
    conn.execute("PRAGMA max_page_count = 1073741823")
    assert store.add_turn(conv, "user", "after", 4.0) == 2  # and the store goes on once there is room
    store.close()
    conn.close()
    assert [t.text for t in open_store(tmp_path / "m.db").turns(conv)] == ["before", "after"]


def _mount_namespace_or_skip(probe_dir: Path) -> None:
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {shlex.quote(str(probe_dir))}"],
                           capture_output=True) if shutil.which("unshare") else None
    if probe is None or probe.returncode != 0:
        pytest.skip("needs a private mount namespace with mounts (root with CAP_SYS_ADMIN)")


def _run_in_mount_namespace(setup: str, script: str, *args: str) -> subprocess.CompletedProcess:
    """``script`` in a private mount namespace after the shell commands ``setup``: whatever they
    mount vanishes with the process."""
    return subprocess.run(["unshare", "-m", "sh", "-ec", setup + '\nexec "$@"', "sh", sys.executable, "-c", script, *args],
                          capture_output=True, text=True, cwd=REPO, timeout=300)


FILL_A_DISK = """
import os, sys
from optmem.store import StoreFull, open_store
d = sys.argv[1]
with open(os.path.join(d, "filler"), "wb") as f:  # room to free once the disk is full
    f.write(b"\\0" * 256 * 1024)
store = open_store(os.path.join(d, "m.db"))
conv = store.conversation_id("a", create=True)
store.add_turn(conv, "user", "0:before", 0.0)
try:  # a step larger than the disk: SQLite spills it mid-statement and rolls it back
    with store.write():
        store.add_turn(conv, "user", "small", 1.0)
        store.add_turn(conv, "user", "y" * 3_000_000, 2.0)
except StoreFull as e:
    print("full:", e)
assert [t.text for t in store.turns(conv)] == ["0:before"]
n = 1
try:  # one small step after another, until a commit finds no room
    while n < 10_000:
        store.add_turn(conv, "user", f"{n}:" + "x" * 20_000, float(n))
        n += 1
except StoreFull as e:
    print("full:", e)
assert 1 < n < 10_000
assert [int(t.text.split(":")[0]) for t in store.turns(conv)] == list(range(n))
os.remove(os.path.join(d, "filler"))
assert store.add_turn(conv, "user", "after", 0.0) == n + 1
store.close()
assert len(open_store(os.path.join(d, "m.db")).turns(conv)) == n + 1
print("ok", n)
"""


def test_a_really_full_disk_is_a_typed_error_and_costs_nothing(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount_namespace_or_skip(disk)
    done = _run_in_mount_namespace(f"mount -t tmpfs -o size=1m tmpfs {shlex.quote(str(disk))}", FILL_A_DISK, str(disk))
    assert done.returncode == 0, done.stderr
    full = [line for line in done.stdout.splitlines() if line.startswith("full:")]
    assert len(full) == 2 and all("database or disk is full" in line for line in full)
    assert not any("no transaction is active" in line for line in full)
    assert done.stdout.splitlines()[-1].startswith("ok ")


# -- read-only -------------------------------------------------------------------------------------


def test_read_only_when_asked_reads_and_never_writes(tmp_path):
    path = _database(tmp_path / "m.db")
    before = _sha(path)
    store = open_store(path, readonly=True)
    conv = store.conversation_id("a", create=False)
    assert store.readonly and [t.text for t in store.turns(conv)] == ["one", "two", "three"]
    assert store.page_image(conv, 1) == (b"\x89PNG page", "large")
    with pytest.raises(ReadOnlyStore, match="read-only"):
        store.add_turn(conv, "user", "four", 3.0)
    store.close()
    assert _sha(path) == before


def test_a_connection_sqlite_refuses_to_write_on_gives_the_read_only_error(tmp_path):
    path = _database(tmp_path / "m.db")
    conn = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True)
    store = open_store(conn)  # not told: SQLite's refusal is translated
    with pytest.raises(ReadOnlyStore, match="readonly database"):
        store.add_turn(store.conversation_id("a", create=False), "user", "four", 3.0)
    conn.close()


def _without_root_override(cmd: list[str]) -> list[str]:
    """Root reads and writes whatever the file mode says; without the DAC capabilities it obeys."""
    if os.geteuid() != 0:
        return cmd
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: file modes cannot be tested")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", *cmd]


@pytest.fixture
def shared_dir():
    """A directory outside pytest's private tmp tree, so a restricted process can reach it."""
    path = Path(tempfile.mkdtemp(prefix="optmem-perm-"))
    path.chmod(0o777)
    yield path
    for p in path.rglob("*"):
        p.chmod(0o700)
    shutil.rmtree(path)


READ_AND_TRY_TO_WRITE = """
import sys
from optmem import OpticalMemory
from optmem.store import ReadOnlyStore, open_store
store = open_store(sys.argv[1])
conv = store.conversation_id("a", create=False)
print("readonly", store.readonly)
print("turns", [t.text for t in store.turns(conv)])
print("image", store.page_image(conv, 1))
try:
    store.add_turn(conv, "user", "four", 3.0)
except ReadOnlyStore as e:
    print("write refused:", e)
with OpticalMemory.open(sys.argv[1], "a") as mem:
    print("history", [t.text for t in mem.history()])
"""


def _check_read_only_run(done: subprocess.CompletedProcess, why: str) -> None:
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[0] == "readonly True" and out[1] == "turns ['one', 'two', 'three']"
    assert out[2] == "image (b'\\x89PNG page', 'large')"
    assert out[3].startswith("write refused:") and why in out[3]
    assert out[4] == "history ['one', 'two', 'three']"


def test_a_file_that_is_not_writable_opens_read_only(shared_dir):
    path = _database(shared_dir / "m.db")
    path.chmod(0o444)
    before = _sha(path)
    done = subprocess.run(_without_root_override([sys.executable, "-c", READ_AND_TRY_TO_WRITE, str(path)]),
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    _check_read_only_run(done, "the file is not writable")
    assert _sha(path) == before


def test_a_database_on_a_read_only_mount_opens_read_only(tmp_path):
    mount = tmp_path / "ro"
    mount.mkdir()
    _mount_namespace_or_skip(mount)
    path = _database(mount / "m.db")
    before = _sha(path)
    quoted = shlex.quote(str(mount))
    done = _run_in_mount_namespace(f"mount --bind {quoted} {quoted}\nmount -o remount,ro,bind {quoted}",
                                   READ_AND_TRY_TO_WRITE, str(path))
    _check_read_only_run(done, "is on a read-only file system")
    assert _sha(path) == before and sorted(p.name for p in mount.iterdir()) == ["m.db"]
    create = "from optmem.store import ReadOnlyStore, open_store\ntry:\n    open_store(sys.argv[1])\nexcept ReadOnlyStore as e:\n    print(e)"
    done = _run_in_mount_namespace(f"mount --bind {quoted} {quoted}\nmount -o remount,ro,bind {quoted}",
                                   "import sys\n" + create, str(mount / "new.db"))
    assert done.stdout.strip() == f"cannot create {mount / 'new.db'}: directory {mount} is on a read-only file system"


# -- opening: each way to fail has its own error -----------------------------------------------------


def test_a_missing_directory_is_named(tmp_path):
    with pytest.raises(MissingDirectory, match=f"directory {tmp_path / 'nowhere'} does not exist"):
        open_store(tmp_path / "nowhere" / "m.db")
    assert not (tmp_path / "nowhere").exists()


def test_permission_denied_is_its_own_error(shared_dir):
    unreadable = _database(shared_dir / "secret.db")
    unreadable.chmod(0o000)
    locked = shared_dir / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    script = """
import sys
from optmem.store import StorePermissionError, open_store
for path in sys.argv[1:]:
    try:
        open_store(path)
    except StorePermissionError as e:
        print(type(e).__name__, e)
"""
    done = subprocess.run(_without_root_override([sys.executable, "-c", script, str(unreadable), str(locked / "m.db")]),
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"StorePermissionError {unreadable}: permission denied to read the database file",
        f"StorePermissionError cannot create {locked / 'm.db'}: permission denied to write in directory {locked}"]
    assert not (locked / "m.db").exists()


def test_foreign_and_corrupt_files_are_refused_untouched(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database at all" * 100)
    for readonly in (False, True):
        with pytest.raises(NotAnOptmemDatabase, match="not an optmem database"):
            open_store(junk, readonly=readonly)
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.commit()
    conn.close()
    before = _sha(foreign)
    with pytest.raises(NotAnOptmemDatabase, match="another application"):
        open_store(foreign)
    assert _sha(foreign) == before
    other_app = tmp_path / "other.db"
    conn = sqlite3.connect(other_app)
    conn.execute("PRAGMA application_id = 1234")
    conn.commit()
    conn.close()
    with pytest.raises(NotAnOptmemDatabase, match="another application"):
        open_store(other_app)
    with pytest.raises(NotAnOptmemDatabase, match="directory"):
        open_store(tmp_path)
    assert not issubclass(MissingDirectory, NotAnOptmemDatabase) and not issubclass(NotAnOptmemDatabase, MissingDirectory)


@pytest.mark.parametrize("damage, missing", [
    ("DROP TABLE reexpand_cache", "reexpand_cache"),
    ("DROP TABLE chunks_fts", "chunks_fts"),
    ("ALTER TABLE turns DROP COLUMN text_sha256", "turns.text_sha256"),
    ("DROP INDEX pages_meta", "pages_meta"),
])
def test_a_damaged_schema_is_refused_at_open(tmp_path, damage, missing):
    path = _database(tmp_path / "m.db")
    conn = sqlite3.connect(path)
    conn.execute(damage)
    conn.commit()
    conn.close()
    for readonly in (False, True):
        with pytest.raises(SchemaMismatch, match=f"needs {missing}\\b.*which the file lacks"):
            open_store(path, readonly=readonly)


def test_create_false_never_creates_a_file(tmp_path):
    missing = tmp_path / "missing.db"
    for kwargs in ({"create": False}, {"readonly": True}):
        with pytest.raises(DatabaseNotFound, match=f"{missing}: no such database"):
            open_store(missing, **kwargs)
    assert not missing.exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(DatabaseNotFound, match=f"{empty} is empty"):
        open_store(empty, create=False)
    assert empty.stat().st_size == 0
    with pytest.raises(DatabaseNotFound, match=":memory:"):
        open_store(":memory:", readonly=True)
    assert open_store(_database(tmp_path / "m.db"), create=False).conversation_names() == ["a"]


def test_a_connection_inside_a_transaction_is_refused(tmp_path):
    conn = sqlite3.connect(tmp_path / "m.db")
    conn.execute("CREATE TEMP TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    assert conn.in_transaction
    with pytest.raises(StoreError, match="inside a transaction"):
        open_store(conn)
