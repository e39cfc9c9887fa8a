import Foundation
import KeijiCore
import Testing

@testable import KeijiScheduler

/// The dashboard's pieces that need no server: escaping, form and cookie parsing, the session store.
struct DashboardRenderingTests {
    @Test func escapingLeavesNoMarkupAndNoAttributeBreakout() {
        #expect(HTMLText.escape(#"<script>alert("x")</script> & 'y'"#) == "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;")
        #expect(HTMLText.escape("plain ünïcode") == "plain ünïcode")
    }

    @Test func formsAndCookiesAreReadAsBrowsersSendThem() {
        let form = DashboardRoutes.form(Data("token=a%2Bb+c&csrf=&x".utf8))
        #expect(form["token"] == "a+b c" && form["csrf"] == "" && form["x"] == "")
        #expect(DashboardSessions.cookie("keiji_session", in: "a=1; keiji_session=abc; b=2") == "abc")
        #expect(DashboardSessions.cookie("keiji_session", in: "xkeiji_session=abc") == nil)
    }

    @Test func onlyTheTokenOpensASessionAndEachSessionHasItsOwnCSRFToken() throws {
        let sessions = DashboardSessions(token: "s3cret-token")
        #expect(sessions.logIn(offering: "s3cret-tokeN") == nil && sessions.logIn(offering: "") == nil && sessions.logIn(offering: "s3cret") == nil)
        let first = try #require(sessions.logIn(offering: "s3cret-token"))
        let second = try #require(sessions.logIn(offering: "s3cret-token\n"))
        #expect(first.count == 64 && first != second)
        let a = try #require(sessions.session(cookieHeader: "keiji_session=\(first)"))
        let b = try #require(sessions.session(cookieHeader: "keiji_session=\(second)"))
        #expect(a.csrfToken.count == 64 && a.csrfToken != b.csrfToken)
        #expect(sessions.session(cookieHeader: "keiji_session=\(first)x") == nil)
        #expect(DashboardSessions.setCookie(first).hasSuffix("; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200"))
    }
}
