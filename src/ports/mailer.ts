/**
 * Sending a message to a client. Messages are queued through the outbox
 * ('mail.send' jobs), so a message exists exactly when the event that
 * causes it does; the adapter delivers it.
 */
export interface OutgoingMail {
  to: string | null
  /** Who the message is for when no address is on file yet: the client's name. */
  toName: string
  subject: string
  text: string
  /** Groups messages for the audit trail: collection.failed, receipt, reminder, … */
  kind: string
}

export interface Mailer {
  send: (mail: OutgoingMail) => Promise<{ id: string }>
}
