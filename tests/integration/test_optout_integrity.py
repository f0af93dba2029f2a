"""Checklist 30 on the maildir transport: with a backlog for u42 stuck
behind a transport that does not finish, an unsubscribe cancels every job
not yet in `sending`, and everything that does reach the outbox afterwards
was already `sending` before the unsubscribe was answered."""
import time

from rouse_harness import (NOTE_TEMPLATES, compile_shim, events,
                           maildir_messages, parse_rfc3339, send_req,
                           statuses, wait_for)

N = 500


def jobs_of(client, ids):
    """{job id: job object} for many jobs."""
    return {j: a["job"] for j, a in statuses(client, ids).items()}


def test_unsubscribe_cancels_what_is_not_yet_sending(make_daemon, tmp_path):
    shim = compile_shim("hang_rename", tmp_path)
    release = tmp_path / "release"
    d = make_daemon(templates=NOTE_TEMPLATES, preload=[shim],
                    env={"ROUSE_HANG_MARKER": "hold-for-u42",
                         "ROUSE_HANG_RELEASE": str(release)})
    d.start()
    try:
        check_cancellation(d, release)
    finally:
        release.write_text("go")  # never leave a delivery thread stuck


def check_cancellation(d, release):
    with d.client(timeout=60) as c:
        answers = c.pipeline([send_req("u42", code="hold-for-u42-%d" % i)
                              for i in range(N)])
        assert all(a["ok"] for a in answers), answers[:3]
        jobs = [a["job"] for a in answers]
        # the transport holds the first messages; the rest wait their turn
        wait_for(lambda: sum(1 for j in jobs_of(c, jobs).values()
                             if j["state"] == "sending") > 0,
                 timeout=20, message="no job reached sending")
        time.sleep(0.5)
        a = c.request({"op": "unsubscribe", "user": "u42", "channel": "email",
                       "source": "test"})
        answered = time.time()
        assert a["ok"], a
        st = jobs_of(c, jobs)
        cancelled = [j for j in jobs if st[j]["state"] == "cancelled"]
        sending = [j for j in jobs if st[j]["state"] == "sending"]
        assert a["cancelled"] == len(cancelled), (a, len(cancelled))
        assert len(cancelled) + len(sending) == N, \
            {s: sum(1 for j in jobs if st[j]["state"] == s)
             for s in {v["state"] for v in st.values()}}
        # jobs are claimed as the transport can take them, not all at once
        assert len(cancelled) >= N - 16, len(cancelled)

        release.write_text("go")
        wait_for(lambda: all(v["state"] == "sent" for v in
                             jobs_of(c, sending).values()),
                 timeout=30, message="held jobs never finished")
        delivered = maildir_messages(d.maildir)
        assert len(delivered) == len(sending), len(delivered)
        by_id = {}
        for _, _, msg in delivered:
            job_id = msg["Message-ID"].strip("<>").split("@")[0]
            by_id[job_id] = msg
        assert set(by_id) == set(sending)
        final = jobs_of(c, sending)
        for j in sending:
            first_sending = parse_rfc3339(events(final[j], "sending")[0]["at"])
            assert first_sending < answered, (j, first_sending, answered)
        for j, job in jobs_of(c, cancelled).items():
            assert not events(job, "sending"), j
