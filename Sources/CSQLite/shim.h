#include <sqlite3.h>

/// SQLITE_TRANSIENT is a macro Swift cannot import.
static inline sqlite3_destructor_type csqlite_transient(void) { return SQLITE_TRANSIENT; }

/// `sqlite3_config` is variadic, which Swift cannot call. Turns off SQLite's memory statistics: with them, every
/// allocation SQLite makes takes a process-wide mutex. Only before SQLite is initialized (the first open);
/// returns SQLITE_MISUSE after.
static inline int csqlite_disable_memory_statistics(void) { return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }

/// `sqlite3_db_config` is variadic too. Leaves the WAL as it is when the connection closes, though it is the last:
/// no checkpoint, no sync, the file not removed.
static inline int csqlite_no_checkpoint_on_close(sqlite3 *db) {
    return sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)0);
}
