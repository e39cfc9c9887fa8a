#!/usr/bin/env python3
"""Writes Fixtures/schedules/dst-vectors.json: expected firing instants across real DST transitions.

An independent reference for keiji's ScheduleCalculator, built on Python's zoneinfo. PEP 495's fold=0 is
exactly keiji's policy: a wall time in a spring-forward gap resolves with the pre-transition offset (so it
fires shifted forward by the gap), and a wall time in a fall-back fold resolves to its first occurrence
(so a schedule of fixed times fires once). A cron with `*` in its minute or hour field fires through the hours,
and cron runs such jobs on both passes of a repeated hour: there fold=1's instant fires too.
Run: python3 scripts/generate-dst-vectors.py
"""
import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

def instant(zone, wall):
    return int(wall.replace(tzinfo=ZoneInfo(zone), fold=0).timestamp())

def iso(ts):
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

def daily(zone, hh, mm, start_day, days):
    """Firings of 'every day at hh:mm' for `days` days from start_day (local date)."""
    out, last = [], None
    for i in range(days):
        d = start_day + timedelta(days=i)
        t = instant(zone, datetime(d.year, d.month, d.day, hh, mm))
        if last is None or t > last:
            out.append(t); last = t
    return out

def every_wall(zone, minutes, start_wall, count):
    """Firings of a cron stepping every `minutes` on the wall clock, from start_wall: each wall time's first
    occurrence, and its second when it is repeated (fold=1 names another instant)."""
    found, wall = set(), start_wall
    while len(found) < count + 4:
        found.add(instant(zone, wall))
        found.add(int(wall.replace(tzinfo=ZoneInfo(zone), fold=1).timestamp()))
        wall += timedelta(minutes=minutes)
    first = instant(zone, start_wall)
    return sorted(t for t in found if t >= first)[:count]

cases = []
def add(name, zone, spec, firings):
    cases.append({"name": name, "zone": zone, "spec": spec,
                  "after": iso(firings[0] - 1), "expected": [iso(t) for t in firings]})

from datetime import date
add("New York spring-forward gap: 02:30 fires at 03:30 EDT", "America/New_York",
    {"days": ["Sunday","Monday","Tuesday","Wednesday","Thursday","Friday","Saturday"], "at": "02:30"},
    daily("America/New_York", 2, 30, date(2026, 3, 6), 5))
add("New York fall-back fold: 01:30 fires once", "America/New_York",
    {"days": ["Sunday","Monday","Tuesday","Wednesday","Thursday","Friday","Saturday"], "at": "01:30"},
    daily("America/New_York", 1, 30, date(2026, 10, 30), 5))
add("London spring-forward gap: 01:30 fires at 02:30 BST", "Europe/London",
    {"days": ["Sunday","Monday","Tuesday","Wednesday","Thursday","Friday","Saturday"], "at": "01:30"},
    daily("Europe/London", 1, 30, date(2026, 3, 27), 5))
add("London fall-back fold: 01:30 fires once", "Europe/London",
    {"days": ["Sunday","Monday","Tuesday","Wednesday","Thursday","Friday","Saturday"], "at": "01:30"},
    daily("Europe/London", 1, 30, date(2026, 10, 23), 5))
add("Lord Howe 30-minute gap: 02:15 fires at 02:45", "Australia/Lord_Howe",
    {"days": ["Sunday","Monday","Tuesday","Wednesday","Thursday","Friday","Saturday"], "at": "02:15"},
    daily("Australia/Lord_Howe", 2, 15, date(2026, 10, 2), 5))
add("Lord Howe 30-minute fold: 01:45 fires once", "Australia/Lord_Howe",
    {"days": ["Sunday","Monday","Tuesday","Wednesday","Thursday","Friday","Saturday"], "at": "01:45"},
    daily("Australia/Lord_Howe", 1, 45, date(2026, 4, 3), 5))
add("New York cron every 30 minutes through the fold", "America/New_York",
    {"cron": "*/30 * * * *"}, every_wall("America/New_York", 30, datetime(2026, 10, 31, 23, 0), 12))
add("Lord Howe cron every 15 minutes through the 30-minute fold", "Australia/Lord_Howe",
    {"cron": "*/15 * * * *"}, every_wall("Australia/Lord_Howe", 15, datetime(2026, 4, 5, 0, 30), 12))
add("London cron hourly at :30 through the fold", "Europe/London",
    {"cron": "30 * * * *"}, every_wall("Europe/London", 60, datetime(2026, 10, 24, 23, 30), 6))
add("New York cron every 30 minutes through the gap", "America/New_York",
    {"cron": "*/30 * * * *"}, every_wall("America/New_York", 30, datetime(2026, 3, 7, 23, 0), 12))
add("Lord Howe cron every 15 minutes through the gap", "Australia/Lord_Howe",
    {"cron": "*/15 * * * *"}, every_wall("Australia/Lord_Howe", 15, datetime(2026, 10, 4, 1, 0), 12))
add("Buenos Aires (rejected by the original) Fridays 22:00", "America/Argentina/Buenos_Aires",
    {"days": ["Friday"], "at": "10:00PM"},
    [instant("America/Argentina/Buenos_Aires", datetime(2026, 11, d, 22, 0)) for d in (27,)] +
    [instant("America/Argentina/Buenos_Aires", datetime(2026, 12, d, 22, 0)) for d in (4, 11)])
add("UTC weekdays at 09:00", "UTC", {"days": ["Monday", "Wednesday"], "at": "09:00"},
    [instant("UTC", datetime(2026, 11, d, 9, 0)) for d in (23, 25, 30)])

with open("Fixtures/schedules/dst-vectors.json", "w") as f:
    json.dump(cases, f, indent=1)
    f.write("\n")
print(f"wrote {len(cases)} cases")
