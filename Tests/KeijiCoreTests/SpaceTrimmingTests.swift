import Foundation
import Testing

@testable import KeijiCore

/// `trimmingSpaces()` replaces Foundation's `trimmingCharacters(in: .whitespaces)` in the settings and `.env`
/// parsers: it must trim exactly the same characters.
struct SpaceTrimmingTests {
    @Test func trimsWhatFoundationsWhitespacesTrims() {
        let samples = ["", " ", "\t", "a", " a ", "\t KEY = value \t", "\u{00A0}x\u{3000}", "\u{2003}\u{2009}x y\u{202F}",
                       "x\r", "\r x \n", "\u{0B}x\u{0C}", "\u{85}x\u{2028}", " \u{301}x", "é ", " 東京 ", "\u{200B}x\u{200B}"]
        for sample in samples {
            #expect(sample.trimmingSpaces() == sample.trimmingCharacters(in: .whitespaces), "\(Array(sample.unicodeScalars))")
            let sub = ("<" + sample + ">").dropFirst().dropLast()
            #expect(sub.trimmingSpaces() == sub.trimmingCharacters(in: .whitespaces))
        }
    }

    /// Every scalar of the Basic Multilingual Plane: trimmed by both or by neither.
    @Test func agreesOnEveryBMPScalar() {
        let differing = (0...0xFFFF).compactMap(Unicode.Scalar.init).filter { scalar in
            let text = String(scalar)
            return text.trimmingSpaces().isEmpty != text.trimmingCharacters(in: .whitespaces).isEmpty
        }
        #expect(differing.isEmpty, "\(differing.map { String($0.value, radix: 16) })")
    }
}
