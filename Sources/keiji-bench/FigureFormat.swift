/// How figures are written in the table: fixed, locale-independent, easy to compare by eye.
enum FigureFormat {
    /// `1234567.8` → `1,234,568`.
    static func count(_ value: Double) -> String {
        guard value.isFinite else { return "—" }
        let digits = String(Int64(value.rounded()))
        let negative = digits.hasPrefix("-")
        let body = Array(negative ? digits.dropFirst() : Substring(digits))
        var out = ""
        for (index, character) in body.enumerated() {
            if index > 0, (body.count - index) % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return (negative ? "-" : "") + out
    }

    static func count(_ value: Int) -> String { count(Double(value)) }

    /// Microseconds below 1 ms (`812 µs`), milliseconds above (`1.92 ms`).
    static func latency(microseconds: Double) -> String {
        if microseconds < 10 { return fixed(microseconds, 1) + " µs" }
        if microseconds < 1000 { return fixed(microseconds, 0) + " µs" }
        return fixed(microseconds / 1000, microseconds < 100_000 ? 2 : 1) + " ms"
    }

    static func seconds(_ value: Double) -> String {
        value < 0.01 ? fixed(value * 1000, 1) + " ms" : value < 1 ? fixed(value * 1000, 0) + " ms" : fixed(value, 2) + " s"
    }

    /// `0.934` → `0.93×`.
    static func ratio(_ value: Double) -> String { fixed(value, 2) + "×" }

    static func megabytes(_ bytes: Int) -> String { fixed(Double(bytes) / 1e6, 1) + " MB" }

    /// `value` with exactly `places` decimals.
    static func fixed(_ value: Double, _ places: Int) -> String {
        guard value.isFinite else { return "—" }
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        let scaled = Int64((abs(value) * scale).rounded())
        let whole = scaled / Int64(scale)
        let fraction = scaled % Int64(scale)
        var text = (value < 0 && scaled != 0 ? "-" : "") + String(whole)
        if places > 0 {
            let digits = String(fraction)
            text += "." + String(repeating: "0", count: places - digits.count) + digits
        }
        return text
    }
}
