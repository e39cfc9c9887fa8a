// libpq, loaded when first needed rather than linked: linked, libpq.so.5 and the twenty libraries it pulls in
// (Kerberos, LDAP, GnuTLS, …) were loaded at every start of every keiji command, about 10 ms each, though only
// DB_URL=postgres:// ever uses them. Each keiji_PQ* function calls the libpq function of the same name, resolved
// once by keiji_pq_load(); libpq's own header (libpq-dev) is included by libpq.c only, which checks that these
// declarations agree with it.
#ifndef KEIJI_CLIBPQ_H
#define KEIJI_CLIBPQ_H

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;
typedef void (*PQnoticeProcessor)(void *arg, const char *message);

/// The values of libpq's ConnStatusType and ExecStatusType that keiji tests for.
extern const int keiji_CONNECTION_OK, keiji_CONNECTION_BAD, keiji_PGRES_COMMAND_OK, keiji_PGRES_TUPLES_OK;
/// PG_DIAG_MESSAGE_PRIMARY and PG_DIAG_SQLSTATE, for keiji_PQresultErrorField.
extern const int keiji_PG_DIAG_MESSAGE_PRIMARY, keiji_PG_DIAG_SQLSTATE;

/// Loads libpq.so.5 and resolves every function below, once (thread-safe). Returns NULL when libpq is usable,
/// else why not (dlerror's message); the functions below must not be called then.
const char *keiji_pq_load(void);

PGconn *keiji_PQconnectdbParams(const char *const *keywords, const char *const *values, int expand_dbname);
int keiji_PQstatus(const PGconn *conn);
char *keiji_PQerrorMessage(const PGconn *conn);
void keiji_PQfinish(PGconn *conn);
void keiji_PQreset(PGconn *conn);
PQnoticeProcessor keiji_PQsetNoticeProcessor(PGconn *conn, PQnoticeProcessor proc, void *arg);
PGresult *keiji_PQexec(PGconn *conn, const char *query);
PGresult *keiji_PQexecText(PGconn *conn, const char *command, int nParams, const char *const *paramValues);
/// A named statement of the session, its parameters' types inferred by the server (text in, text out, as above).
PGresult *keiji_PQprepareText(PGconn *conn, const char *name, const char *command, int nParams);
PGresult *keiji_PQexecPreparedText(PGconn *conn, const char *name, int nParams, const char *const *paramValues);
void keiji_PQclear(PGresult *res);
int keiji_PQresultStatus(const PGresult *res);
char *keiji_PQresultErrorField(const PGresult *res, int fieldcode);
int keiji_PQntuples(const PGresult *res);
int keiji_PQnfields(const PGresult *res);
char *keiji_PQgetvalue(const PGresult *res, int tup_num, int field_num);
int keiji_PQgetisnull(const PGresult *res, int tup_num, int field_num);

#endif
