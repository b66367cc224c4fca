// Refund rules as data, and the calculation that applies one to a withdrawal. A rule is a row of
// refund_rules (migration 0017): a jurisdiction, the dates it is in force, its source, and its
// parameters — the cancellation window in hours, tiers by percent of the programme completed (pro rata,
// a fixed percent, or nothing), and the days within which a refund is remitted. A policy change is a
// new row with a later effective date, so an old calculation keeps the rule it was made under; another
// state's table (Texas' scheduled-hours percentages) is a row with `fixed_pct` tiers.
//
// The calculation is pure (no database): lib/refunds.ts gathers the inputs, stores them with the result
// and the rule id, and never recomputes. All money is integer cents; percentages are basis points
// (1/100 of a percent, integers), and every rounding favours the student (the school retains the
// floor of its share). The result carries its working, one sentence per step.
import { z } from 'zod';
import { formatCents } from './ledger';

/** Refunds follow the rules of the state that authorises the school (GNPEC, Georgia). */
export const REFUND_JURISDICTION = 'GA';

const Tier = z.discriminatedUnion('refund', [
  z.strictObject({ belowPct: z.number().positive().max(100), refund: z.literal('pro_rata') }),
  z.strictObject({ belowPct: z.number().positive().max(100), refund: z.literal('none') }),
  z.strictObject({
    belowPct: z.number().positive().max(100),
    refund: z.literal('fixed_pct'),
    refundPct: z.int().min(0).max(100),
  }),
]);
export type RefundTier = z.infer<typeof Tier>;

/** The parameters of a rule (refund_rules.rule): checked when read, so a bad row fails loudly. */
export const RuleParameters = z.strictObject({
  cancellationWindowHours: z
    .int()
    .min(0)
    .max(24 * 365),
  /** In ascending order of belowPct; at or above the last one, nothing is refunded. */
  tiers: z.array(Tier).min(1),
  remitWithinDays: z.int().min(1).max(365),
});
export type RuleParameters = z.infer<typeof RuleParameters>;

export interface RefundRule {
  id: string;
  jurisdiction: string;
  effectiveFrom: string;
  effectiveTo: string | null;
  source: string;
  parameters: RuleParameters;
}

export type ProgressSource = 'attendance' | 'modules' | 'none';

/** Everything the rule is applied to; stored as refunds.inputs. */
export interface RefundInputs {
  /** The instant the cancellation window runs from (the enrollment's creation, see docs/ledger.md). */
  windowStartsAt: string;
  windowStartsFrom: 'enrollment_created';
  /** When the student gave notice (official) or the school recorded its determination (unofficial). */
  notifiedAt: string;
  determinedOn: string;
  startDate: string;
  lastDateOfAttendance: string | null;
  progress: {
    source: ProgressSource;
    /** Completed share of the programme in basis points (0–10,000), rounded down. */
    completedBasisPoints: number;
    minutesAttended: number;
    clockHoursAttended: number;
    clockHourMinutes: number;
    programClockHours: number;
    modulesCompleted: number;
    modules: number;
    completedModuleClockHours: number;
  };
  /** Net tuition and fee charges of the enrollment, less tuition reductions already posted. */
  refundableChargesCents: number;
  /** Every charge of the enrollment (books, kit, other included), net of reversals. */
  allChargesCents: number;
  /** The enrollment's balance before the calculation (debits − credits). */
  enrollmentBalanceCents: number;
}

export type RefundBasis = 'cancellation' | 'pro_rata' | 'fixed_pct' | 'none' | 'nothing_charged';

export interface RefundResult {
  basis: RefundBasis;
  tier: RefundTier | null;
  retainedCents: number;
  adjustmentCents: number;
  refundCents: number;
  dueDate: string;
  working: string[];
}

/** "49.99 %" from basis points. */
export const percentOf = (basisPoints: number) =>
  `${Math.floor(basisPoints / 100)}.${String(basisPoints % 100).padStart(2, '0')} %`;

const HOUR_MS = 3_600_000;

/** YYYY-MM-DD plus `days` calendar days. */
export function addDays(day: string, days: number): string {
  const date = new Date(`${day}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + days);
  return date.toISOString().slice(0, 10);
}

/** The tier a progress falls in, or null at or above the last tier (nothing is refunded). */
function tierFor(parameters: RuleParameters, basisPoints: number): RefundTier | null {
  const ordered = [...parameters.tiers].sort((a, b) => a.belowPct - b.belowPct);
  return ordered.find((tier) => basisPoints < Math.round(tier.belowPct * 100)) ?? null;
}

function progressSentence(inputs: RefundInputs): string {
  const p = inputs.progress;
  const pct = percentOf(p.completedBasisPoints);
  switch (p.source) {
    case 'attendance':
      return (
        `Programme completed: ${pct} — ${p.clockHoursAttended} clock hours attended (${p.minutesAttended} minutes ` +
        `at ${p.clockHourMinutes} minutes an hour) of the programme's ${p.programClockHours} scheduled clock hours.`
      );
    case 'modules':
      return p.programClockHours > 0
        ? `Programme completed: ${pct} — no attendance is recorded, so by modules completed: ` +
            `${p.completedModuleClockHours} of ${p.programClockHours} clock hours (${p.modulesCompleted} of ${p.modules} modules).`
        : `Programme completed: ${pct} — no attendance is recorded, so by modules completed: ${p.modulesCompleted} of ${p.modules}.`;
    case 'none':
      return 'Programme completed: 0.00 % — no attendance and no completed module are recorded.';
  }
}

/** What the school retains of the refundable charges, and the step that says why. */
function retained(
  parameters: RuleParameters,
  inputs: RefundInputs,
): { basis: RefundBasis; tier: RefundTier | null; cents: number; step: string } {
  const charged = inputs.refundableChargesCents;
  const hours = (Date.parse(inputs.notifiedAt) - Date.parse(inputs.windowStartsAt)) / HOUR_MS;
  const windowMs = parameters.cancellationWindowHours * HOUR_MS;
  if (Date.parse(inputs.notifiedAt) - Date.parse(inputs.windowStartsAt) <= windowMs) {
    return {
      basis: 'cancellation',
      tier: null,
      cents: 0,
      step:
        `Notice came ${hours.toFixed(2)} hours after the enrollment was created, within the ` +
        `${parameters.cancellationWindowHours}-hour cancellation window: everything charged is cancelled and all money paid is refunded.`,
    };
  }
  const outside = `Notice came ${hours.toFixed(2)} hours after the enrollment was created, after the ${parameters.cancellationWindowHours}-hour cancellation window.`;
  if (charged <= 0) {
    return { basis: 'nothing_charged', tier: null, cents: 0, step: `${outside} No tuition or fee was charged.` };
  }
  const bp = inputs.progress.completedBasisPoints;
  const tier = tierFor(parameters, bp);
  if (!tier || tier.refund === 'none') {
    const at = tier ? `below ${tier.belowPct} %` : `at or above ${parameters.tiers.at(-1)?.belowPct} %`;
    return {
      basis: 'none',
      tier,
      cents: charged,
      step: `${outside} Tier ${at} of the programme completed: no refund; the school retains all ${formatCents(charged)} of tuition and fees.`,
    };
  }
  if (tier.refund === 'pro_rata') {
    const cents = Math.floor((charged * bp) / 10_000);
    return {
      basis: 'pro_rata',
      tier,
      cents,
      step:
        `${outside} Tier below ${tier.belowPct} % completed: pro rata. The school retains ${percentOf(bp)} of ` +
        `${formatCents(charged)} of tuition and fees = ${formatCents(cents)} (rounded down).`,
    };
  }
  const cents = Math.floor((charged * (100 - tier.refundPct)) / 100);
  return {
    basis: 'fixed_pct',
    tier,
    cents,
    step:
      `${outside} Tier below ${tier.belowPct} % completed: ${tier.refundPct} % of tuition and fees is refunded; ` +
      `the school retains ${100 - tier.refundPct} % of ${formatCents(charged)} = ${formatCents(cents)} (rounded down).`,
  };
}

/**
 * Applies `rule` to a withdrawal's inputs: what the school retains of the refundable charges, the
 * tuition reduction that removes the rest from the ledger (in a cancellation, every charge), and the
 * refund — the credit balance the enrollment is left with after the reduction — due `remitWithinDays`
 * after the date of determination.
 */
export function computeRefund(rule: RefundRule, inputs: RefundInputs): RefundResult {
  const parameters = rule.parameters;
  const kept = retained(parameters, inputs);
  const adjustmentCents =
    kept.basis === 'cancellation'
      ? Math.max(0, inputs.allChargesCents)
      : Math.max(0, inputs.refundableChargesCents - kept.cents);
  const afterCents = inputs.enrollmentBalanceCents - adjustmentCents;
  const refundCents = Math.max(0, -afterCents);
  const dueDate = addDays(inputs.determinedOn, parameters.remitWithinDays);
  const working = [
    `Rule ${rule.id} (${rule.source}), in force on the date of determination ${inputs.determinedOn}.`,
    progressSentence(inputs),
    kept.step,
    kept.basis === 'cancellation'
      ? `Tuition reduction: all ${formatCents(inputs.allChargesCents)} charged to the enrollment.`
      : `Tuition reduction: ${formatCents(inputs.refundableChargesCents)} of tuition and fees less ${formatCents(kept.cents)} retained = ${formatCents(adjustmentCents)}.`,
    `Enrollment balance ${formatCents(inputs.enrollmentBalanceCents)} less the reduction = ${formatCents(afterCents)}` +
      (refundCents > 0
        ? `: the school owes ${formatCents(refundCents)}, the refund.`
        : afterCents > 0
          ? `: the student still owes ${formatCents(afterCents)}; no refund.`
          : ': nothing is owed either way; no refund.'),
    `Refund due by ${dueDate}: ${parameters.remitWithinDays} days after the date of determination.`,
  ];
  return {
    basis: kept.basis,
    tier: kept.tier,
    retainedCents: kept.cents,
    adjustmentCents,
    refundCents,
    dueDate,
    working,
  };
}
