import Foundation

/// One HTTP/1.1 request as the dashboard and the metrics endpoint see it: its head parsed and bounded by
/// ``HTTPRequestHead``, its body read whole (at most ``LoopbackHTTPServer/bodyLimitBytes``). A `HEAD` request
/// arrives as `GET`; the server leaves the body out of the answer.
struct HTTPRequest: Sendable {
    var method: String
    /// The path as sent (percent-encoded), its dot segments resolved.
    var path: String
    /// The query's fields in order, percent-decoded (`+` as a space).
    var query: [(name: String, value: String)]
    /// By lower-cased name; a repeated header's values joined with ", ".
    var headers: [String: String]
    var body: Data

    func header(_ name: String) -> String? { headers[name.lowercased()] }
}

/// An answer with its whole body; the server adds `Content-Length` and `Connection: close`.
struct HTTPResponse: Sendable {
    var status: Int
    var headers: [(name: String, value: String)]
    var body: Data

    init(status: Int, headers: [(name: String, value: String)] = [], body: Data = Data()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    static func text(_ status: Int, _ text: String, headers: [(name: String, value: String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "text/plain; charset=utf-8")] + headers, body: Data(text.utf8))
    }

    /// The bytes on the wire; `head`: the answer to a `HEAD` request, its body's length announced and left out.
    func encoded(head: Bool) -> Data {
        var text = "HTTP/1.1 \(status) \(Self.reason(status))\r\n"
        for (name, value) in headers where !name.contains(where: \.isNewline) && !value.contains(where: \.isNewline) {
            text += "\(name): \(value)\r\n"
        }
        text += "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        var bytes = Data(text.utf8)
        if !head { bytes += body }
        return bytes
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 303: "See Other"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 413: "Content Too Large"
        case 421: "Misdirected Request"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 503: "Service Unavailable"
        case 505: "HTTP Version Not Supported"
        default: "Status"
        }
    }
}

/// A request's line and header fields, parsed from bytes up to (not including) the blank line that ends them.
/// Anything a client may send is answered: a malformed head throws the status to send back.
struct HTTPRequestHead {
    var method: String
    var target: String
    var headers: [String: String]

    struct Refusal: Error {
        let status: Int
        let message: String
    }

    static func parse(_ bytes: ArraySlice<UInt8>) throws(Refusal) -> HTTPRequestHead {
        let text = String(decoding: bytes, as: UTF8.self)
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)[...]
        guard let requestLine = lines.popFirst() else { throw Refusal(status: 400, message: "no request line") }
        let parts = requestLine.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[0].allSatisfy({ $0.isASCII && $0.isUppercase }), parts[1].hasPrefix("/") else {
            throw Refusal(status: 400, message: "the request line is not METHOD /path HTTP/1.1")
        }
        guard parts[2] == "HTTP/1.1" || parts[2] == "HTTP/1.0" else {
            throw Refusal(status: 505, message: "only HTTP/1.0 and HTTP/1.1 are served")
        }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex, !line.first!.isWhitespace else {
                throw Refusal(status: 400, message: "a header field is not name: value")
            }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            headers[name] = headers[name].map { $0 + ", " + value } ?? value
        }
        return HTTPRequestHead(method: String(parts[0]), target: String(parts[1]), headers: headers)
    }

    /// The body's length, refused when it is not one plain number or is sent chunked: nothing here takes a body
    /// larger than a form of a token or two, and a body of no declared length could go on for ever.
    func contentLength(limit: Int) throws(Refusal) -> Int {
        if headers["transfer-encoding"] != nil {
            throw Refusal(status: 413, message: "413 payload too large: a request body here is at most \(limit) bytes, with a Content-Length")
        }
        guard let field = headers["content-length"] else { return 0 }
        guard !field.isEmpty, field.utf8.count <= 18, field.allSatisfy(\.isASCII), let length = Int(field), length >= 0,
              field.allSatisfy(\.isNumber) else {
            throw Refusal(status: 400, message: "Content-Length is not a number")
        }
        guard length <= limit else { throw Refusal(status: 413, message: "413 payload too large: a request body here is at most \(limit) bytes") }
        return length
    }

    /// The request for the routes: the path's dot segments resolved (`/a/../b` is `/b`), the query decoded.
    func request(body: Data) -> HTTPRequest {
        let (rawPath, rawQuery) = target.firstIndex(of: "?").map { (target[..<$0], target[target.index(after: $0)...]) } ?? (target[...], "")
        var segments: [Substring] = []
        for segment in rawPath.split(separator: "/", omittingEmptySubsequences: false).dropFirst() {
            switch segment {
            case ".": continue
            case "..": _ = segments.popLast()
            default: segments.append(segment)
            }
        }
        let query = rawQuery.split(separator: "&").map { field in
            let pair = field.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String { s.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s) }
            return (name: decode(pair[0]), value: pair.count > 1 ? decode(pair[1]) : "")
        }
        return HTTPRequest(method: method == "HEAD" ? "GET" : method, path: "/" + segments.joined(separator: "/"),
                           query: query, headers: headers, body: body)
    }
}
