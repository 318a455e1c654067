"""The reconciler: nothing a crash, a dead database or an ambiguous Cal.com answer leaves behind is lost.

The booking flow writes its attempt *before* calling Cal.com, so every interruption leaves a durable open
attempt (``claimed`` / ``sent`` / ``unknown`` / ``confirmed``). One pass of ``reconcile_once``:

1. **Open attempts** whose flow lock has expired are claimed one by one (a *lease*: ``lease_until`` /
   ``lease_owner``, and the flow lock ``locked_until`` set to the same instant, so neither another
   reconciler nor a retried function call works the attempt meanwhile). On PostgreSQL and MariaDB the
   claim is ``SELECT ... FOR UPDATE SKIP LOCKED`` plus the lease UPDATE in one transaction, so concurrent
   reconcilers pass each other instead of queueing; on SQLite (one writer at a time) it is an UPDATE
   guarded by "lease free", whose rowcount says who won. Then, outside the claim transaction:

   - ``confirmed`` with a uid: fetch the booking and record it (``record_booking``: layers 3/4 apply);
   - ``sent`` / ``unknown`` (or a ``confirmed`` whose booking vanished): look the booking up by attendee
     e-mail and time, keep only those whose ``metadata.attempt_id`` is this attempt's (that proves
     ownership, so the freshness/ownership guards are not needed), move to ``confirmed`` and record;
     nothing found and first sent more than ``deadline_seconds`` ago → ``failed``;
   - ``claimed`` with an expired lock: the flow died before marking it ``sent``, so Cal.com was never
     asked; → ``failed`` at once (a retried call may take a failed attempt over);
   - a lookup that fails or times out leaves the attempt open for the next pass.

2. **Orphans**: ``failed`` / ``rejected`` booking attempts (last changed between ``orphan_grace_seconds``
   and ``retention_hours`` ago, sent at least once, ``orphan_cancelled_at`` unset) may still own a Cal.com
   booking nobody was told about (e.g. a booking that appeared after the deadline). The same lookup finds
   bookings carrying *our* attempt id and cancels each once, then stamps ``orphan_cancelled_at``. A
   rejected attempt's stored ``calcom_booking_uid`` is the *foreign* booking Cal.com handed us; it is
   never used here: only a booking whose metadata names this attempt is ever cancelled, and never one that
   has a local appointment. The grace period matters: until it passed, a retry of the call may still take
   the attempt over and answer ``booked`` with that very booking.

3. **Appointments** (``appointments.py``, run after step 2): a few upcoming appointments per pass are
   compared with their Cal.com bookings and brought in step (cancelled, moved or restored there).

   **Backlog gauges** for the ``VoicebookReconcilerBacklogStale`` alert.

4. **Retention**: final attempts (``recorded`` / ``failed`` / ``rejected``) not updated for
   ``retention_hours`` are archived. There is no attempts-archive table (and no migration may add one),
   so "archived" means: a ``guard_events`` row (layer ``reconciler``, verdict ``attempt_archived``)
   whose ``details`` hold every column of the attempt as JSON, then the attempt row is deleted, in the
   same transaction. A ``recorded`` attempt is only archived while its appointment exists (otherwise it
   would be the last trace of the booking). ``appointments.attempt_id`` is ``ON DELETE SET NULL``, so
   the appointment stays and only loses the link. To see an archived attempt:
   ``SELECT details FROM guard_events WHERE verdict = 'attempt_archived' AND attempt_id = '<public id>'``.

Every action is one ``guard_events`` row (layer ``reconciler``, verdict = the action) and one increment
of ``voicebook_reconciler_actions_total{action}``.

    driver.py         ``reconcile_once`` runs the steps in order, ``run_periodically`` in a loop; gauges (3)
    context.py        the pass's collaborators, its summary, the upstream lookup of an attempt
    leases.py         claiming an attempt (FOR UPDATE SKIP LOCKED, or a guarded UPDATE on SQLite)
    open_attempts.py  step 1 (bookings, and cancel/reschedule attempts)     orphans.py  step 2
    appointments.py   step 3             retention.py  step 4
"""
