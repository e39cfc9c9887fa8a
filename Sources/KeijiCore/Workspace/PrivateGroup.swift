import Synchronization

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Whether a group is its owner's alone: Debian and Ubuntu give each user a group of their own and, with
/// `USERGROUPS_ENAB`, a umask of 002, so every folder a user makes is group-writable, and only they are in that group.
/// Such a folder is as private as one of mode 0755. The rule is Debian's OpenSSH's for `StrictModes`: the group's
/// members, counting the accounts whose primary group it is and those it lists, are exactly the owner.
public enum PrivateGroup {
    /// Whether group `gid` has `owner` as its only member, read from the account databases (`getpwent`, `getgrgid`).
    /// Answers are kept for ``remembered``: every run's start asks, and a scan of the accounts is not free.
    public static func isPrivate(_ gid: gid_t, to owner: uid_t) -> Bool {
        let now = ContinuousClock.now
        return answers.withLock { answers in
            if let known = answers[Key(gid: gid, owner: owner)], now - known.at < remembered { return known.isPrivate }
            let answer = read(gid, owner)
            answers[Key(gid: gid, owner: owner)] = (answer, now)
            return answer
        }
    }

    /// How long an answer stands: a member added to the group later is seen within this.
    static let remembered = Duration.seconds(30)

    /// The rule on the group's accounts: `primaryMembers`, the uids whose primary group it is; `listed`, the names the
    /// group lists; `ownerName`, the owner's account name. No member at all is not private (such groups are setgid
    /// programs'), nor one with anyone besides the owner.
    static func isPrivate(owner: uid_t, ownerName: String, primaryMembers: [uid_t], listed: [String]) -> Bool {
        guard primaryMembers.allSatisfy({ $0 == owner }), listed.allSatisfy({ $0 == ownerName }) else { return false }
        return !primaryMembers.isEmpty || !listed.isEmpty
    }

    private struct Key: Hashable {
        var gid: gid_t
        var owner: uid_t
    }

    /// Guards `getpwent`'s process-wide cursor too: answers are read under the lock.
    private static let answers = Mutex<[Key: (isPrivate: Bool, at: ContinuousClock.Instant)]>([:])

    private static func read(_ gid: gid_t, _ owner: uid_t) -> Bool {
        guard let group = getgrgid(gid), let account = getpwuid(owner), let name = account.pointee.pw_name else { return false }
        let ownerName = String(cString: name)
        var listed: [String] = []
        if var member = group.pointee.gr_mem {
            while let name = member.pointee {
                listed.append(String(cString: name))
                member += 1
            }
        }
        var primaryMembers: [uid_t] = []
        setpwent()
        while let entry = getpwent() {
            if entry.pointee.pw_gid == gid { primaryMembers.append(entry.pointee.pw_uid) }
        }
        endpwent()
        return isPrivate(owner: owner, ownerName: ownerName, primaryMembers: primaryMembers, listed: listed)
    }
}
