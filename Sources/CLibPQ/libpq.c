#include "CLibPQ.h"

#include <dlfcn.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stddef.h>

const int keiji_CONNECTION_OK = CONNECTION_OK, keiji_CONNECTION_BAD = CONNECTION_BAD;
const int keiji_PGRES_COMMAND_OK = PGRES_COMMAND_OK, keiji_PGRES_TUPLES_OK = PGRES_TUPLES_OK;
const int keiji_PG_DIAG_MESSAGE_PRIMARY = PG_DIAG_MESSAGE_PRIMARY;
const int keiji_PG_DIAG_SQLSTATE = PG_DIAG_SQLSTATE;

// Every libpq function keiji uses: its return type, name and parameters (as libpq-fe.h declares them).
#define LIBPQ_FUNCTIONS(X) \
    X(PGconn *, PQconnectdbParams, (const char *const *, const char *const *, int)) \
    X(ConnStatusType, PQstatus, (const PGconn *)) \
    X(char *, PQerrorMessage, (const PGconn *)) \
    X(void, PQfinish, (PGconn *)) \
    X(void, PQreset, (PGconn *)) \
    X(PQnoticeProcessor, PQsetNoticeProcessor, (PGconn *, PQnoticeProcessor, void *)) \
    X(PGresult *, PQexec, (PGconn *, const char *)) \
    X(PGresult *, PQexecParams, (PGconn *, const char *, int, const Oid *, const char *const *, const int *, const int *, int)) \
    X(PGresult *, PQprepare, (PGconn *, const char *, const char *, int, const Oid *)) \
    X(PGresult *, PQexecPrepared, (PGconn *, const char *, int, const char *const *, const int *, const int *, int)) \
    X(void, PQclear, (PGresult *)) \
    X(ExecStatusType, PQresultStatus, (const PGresult *)) \
    X(char *, PQresultErrorField, (const PGresult *, int)) \
    X(int, PQntuples, (const PGresult *)) \
    X(int, PQnfields, (const PGresult *)) \
    X(char *, PQgetvalue, (const PGresult *, int, int)) \
    X(int, PQgetisnull, (const PGresult *, int, int))

// A pointer per function, typed from libpq's own declaration (so a mismatch with the list above fails to compile).
#define POINTER(type, name, parameters) static __typeof__(&name) p_##name;
LIBPQ_FUNCTIONS(POINTER)

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const char *failure = "libpq was not loaded";

static void load(void) {
    void *library = dlopen("libpq.so.5", RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        failure = dlerror();
        return;
    }
#define RESOLVE(type, name, parameters) \
    if ((p_##name = (__typeof__(&name))dlsym(library, #name)) == NULL) { failure = dlerror(); return; }
    LIBPQ_FUNCTIONS(RESOLVE)
    failure = NULL;
}

const char *keiji_pq_load(void) {
    pthread_once(&once, load);
    return failure;
}

PGconn *keiji_PQconnectdbParams(const char *const *keywords, const char *const *values, int expand_dbname) {
    return p_PQconnectdbParams(keywords, values, expand_dbname);
}
int keiji_PQstatus(const PGconn *conn) { return p_PQstatus(conn); }
char *keiji_PQerrorMessage(const PGconn *conn) { return p_PQerrorMessage(conn); }
void keiji_PQfinish(PGconn *conn) { p_PQfinish(conn); }
void keiji_PQreset(PGconn *conn) { p_PQreset(conn); }
PQnoticeProcessor keiji_PQsetNoticeProcessor(PGconn *conn, PQnoticeProcessor proc, void *arg) {
    return p_PQsetNoticeProcessor(conn, proc, arg);
}
PGresult *keiji_PQexec(PGconn *conn, const char *query) { return p_PQexec(conn, query); }
// Text parameters and text results: all keiji sends and reads.
PGresult *keiji_PQexecText(PGconn *conn, const char *command, int nParams, const char *const *paramValues) {
    return p_PQexecParams(conn, command, nParams, NULL, paramValues, NULL, NULL, 0);
}
PGresult *keiji_PQprepareText(PGconn *conn, const char *name, const char *command, int nParams) {
    return p_PQprepare(conn, name, command, nParams, NULL);
}
PGresult *keiji_PQexecPreparedText(PGconn *conn, const char *name, int nParams, const char *const *paramValues) {
    return p_PQexecPrepared(conn, name, nParams, paramValues, NULL, NULL, 0);
}
void keiji_PQclear(PGresult *res) { p_PQclear(res); }
int keiji_PQresultStatus(const PGresult *res) { return p_PQresultStatus(res); }
char *keiji_PQresultErrorField(const PGresult *res, int fieldcode) { return p_PQresultErrorField(res, fieldcode); }
int keiji_PQntuples(const PGresult *res) { return p_PQntuples(res); }
int keiji_PQnfields(const PGresult *res) { return p_PQnfields(res); }
char *keiji_PQgetvalue(const PGresult *res, int tup_num, int field_num) { return p_PQgetvalue(res, tup_num, field_num); }
int keiji_PQgetisnull(const PGresult *res, int tup_num, int field_num) { return p_PQgetisnull(res, tup_num, field_num); }
