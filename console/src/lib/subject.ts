// What a history is asked for: one worker, posting, employer or complaint
// (the `subject` of AuditService.GetHistory).

export type Subject =
  | { case: 'workerId'; value: string }
  | { case: 'postingId'; value: string }
  | { case: 'employerId'; value: string }
  | { case: 'complaintId'; value: bigint };
