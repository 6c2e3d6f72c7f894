import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Mailer, OutgoingMail } from '../../ports/mailer.js'

/**
 * Until the communications work brings SMTP and branded templates, messages
 * are logged (the address is not: it is personal data) so a person can see
 * what would have gone out and to whom.
 */
export function createLogMailer (log: FastifyBaseLogger): Mailer {
  return {
    async send (mail: OutgoingMail) {
      const id = randomUUID()
      log.info({ mailId: id, kind: mail.kind, toName: mail.toName, hasAddress: mail.to !== null, subject: mail.subject, text: mail.text }, 'mail (logged; no mail transport configured yet)')
      return { id }
    }
  }
}
