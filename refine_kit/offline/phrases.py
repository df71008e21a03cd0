"""Every sentence the offline model can write, kept apart from the code that chooses them.

The writer and the reviser fill these templates in; the critic words its requests, praise and
gaps from the tables at the end. Placeholders: {topic}, {subject} (a shorter form for
headings), {Topic} and {Subject} capitalised, {x}/{X} a section or request subject, and the
words that agree with the topic: {is} (is/are), {has}, {it}/{It} (it/they), {them} (it/them)
and {s}, a verb's singular ending ("matter{s}").

Body prose avoids the words the critic looks for elsewhere (risk, indicators, "for example",
linking phrases), so that each rubric check changes only when its own edit is made. Lists and
later sentences mostly leave the topic out: the heading and the opening sentence already name
it, and a topic repeated in every line is what makes a template read like one.
"""
# ruff: noqa: E501  (the prose tables read best as one sentence per line)

from __future__ import annotations

from typing import NamedTuple


class SectionTemplate(NamedTuple):
    """A body section the writer can draft, with two ways to head it."""

    key: str
    headings: tuple[str, str]
    sentences: tuple[str, str, str, str]  # first two: a thin section; all four: a developed one
    bullets: tuple[str, str, str]


SECTION_TEMPLATES: tuple[SectionTemplate, ...] = (
    SectionTemplate("landscape", ("{Subject} today: the state of play", "The current landscape of {subject}"), (
        "Interest in {subject} has spread from a handful of early adopters to the mainstream, and the conversation has shifted from whether to act to how.",
        "Most organisations sit somewhere in the middle: aware of the issue, experimenting in places, but without a settled approach.",
        "The gap between leaders and laggards is rarely about money or tools; it is usually about clarity of purpose and a willingness to change established routines.",
        "Knowing where your own organisation sits on that spectrum is the first honest step towards improving it."), (
        "Early adopters typically share a clear sponsor and a small, well-defined starting problem.",
        "Organisations in the middle often run several disconnected pilots that never join up.",
        "Latecomers can benefit from lessons others learned the hard way, provided they adapt them rather than copy them.")),
    SectionTemplate("blocks", ("The essentials of {subject}", "The building blocks of {subject}"), (
        "At its core, any serious effort on {subject} combines three elements: a clear goal, a set of repeatable practices, and people with the authority to adjust them.",
        "Weakness in any one of these tends to undermine the other two.",
        "A goal without practices produces good intentions and little change, while practices without authority turn into box-ticking that nobody feels able to improve.",
        "Naming each element explicitly, and agreeing who is responsible for it, turns an abstract ambition into work that can be planned and reviewed."), (
        "A one-page statement of what {subject} should achieve, written in plain language and shared widely.",
        "A short list of agreed practices, each with a named owner and a date for its next review.",
        "A regular, time-boxed forum where the people doing the work can propose changes to those practices.")),
    SectionTemplate("practices", ("Practices that work for {subject}", "Proven approaches to {subject}"), (
        "The approaches that hold up best in {subject} are usually modest and specific rather than sweeping.",
        "They favour small, reversible steps over large programmes that are hard to unwind.",
        "Starting small keeps the cost of mistakes low and creates early results that build support for the following step.",
        "It also gives teams room to adapt a practice to local conditions instead of forcing a template that was designed for someone else."), (
        "Run a time-boxed pilot of {topic} with one willing team before committing the wider organisation.",
        "Write down the handful of decisions that matter most and revisit them on a fixed schedule.",
        "Pair newcomers with experienced practitioners so that tacit knowledge spreads beyond a few people.")),
    SectionTemplate("people", ("The people side of {subject}", "Roles, skills and ownership in {subject}"), (
        "Whatever the plan, work on {subject} succeeds or fails through the people who carry it out.",
        "Clear roles, realistic workloads and the right skills matter more than any particular method.",
        "Many initiatives stall because responsibility is shared so widely that nobody feels accountable, or held so narrowly that a single departure sets the work back by months.",
        "Investing in skills, and making ownership visible, protects the effort against both failures."), (
        "A named owner for {subject} at leadership level, with time set aside for the role rather than added on top.",
        "Short, practical training sessions built around real tasks instead of generic courses.",
        "A simple map of who decides, who is consulted and who is informed on the key questions.")),
    SectionTemplate("tools", ("Tools and infrastructure behind {subject}", "Choosing the right tools for {subject}"), (
        "Tools can make {subject} easier, but they rarely fix an unclear process on their own.",
        "The sensible order is to settle how the work should flow first and then choose tools that support it.",
        "Buying first and designing the process afterwards tends to lock in awkward workarounds that outlive the original purchase.",
        "Favouring tools that fit existing systems, and that staff can learn in days rather than weeks, keeps adoption costs in proportion."), (
        "A shared, searchable place where decisions and documents about {subject} live.",
        "Lightweight automation for repetitive steps, introduced only after the manual version works.",
        "A short trial of any new tool with the people who will use it daily, before a wider licence is signed.")),
    SectionTemplate("economics", ("Costs, benefits and value of {subject}", "Making the business case for {subject}"), (
        "Decisions about {subject} are easier to defend when costs and benefits are set out side by side.",
        "Some benefits are direct, while others show up as avoided problems that are easy to overlook.",
        "A credible case separates one-off costs from running costs and is honest about benefits that are uncertain or slow to arrive.",
        "Decision-makers tend to trust a modest, well-reasoned estimate more than an ambitious projection with little behind it."), (
        "List one-off costs separately from ongoing costs such as maintenance and training.",
        "Describe benefits in terms decision-makers already use, such as time saved or errors avoided.",
        "Include a clearly labelled illustrative scenario rather than presenting guesses as forecasts.")),
    SectionTemplate("scenarios", ("{Subject} on the ground: illustrative scenarios", "{Subject} in everyday situations"), (
        "Concrete situations make the principles behind {subject} easier to grasp.",
        "They help readers picture how the same ideas play out in organisations of different sizes.",
        "Small organisations tend to move quickly but lack specialist support, while larger ones have expertise but more layers of approval to work through.",
        "Seeing both patterns side by side helps readers judge which lessons transfer to their own circumstances."), (
        "Illustration: a small team adopts {topic} for a single recurring task and reviews the results after a month.",
        "Illustration: a larger organisation rolls {subject} out region by region, adjusting its approach after each stage.",
        "Illustration: a team that cuts handover time by, say, a fifth would treat that as a prompt to look deeper, not as proof of success.")),
    SectionTemplate("governance", ("Governance and accountability for {subject}", "Keeping {subject} on course"), (
        "Without light-touch governance, work on {subject} tends to drift as priorities change and early enthusiasm fades.",
        "The aim is not bureaucracy but a regular moment to check direction.",
        "A short periodic review, with the authority to stop work that is not delivering as well as to start new work, keeps effort focused where it matters.",
        "Recording the reasons for major decisions also makes them far easier to explain later to staff, customers or auditors."), (
        "A quarterly review of {topic} with a fixed agenda and a short written record.",
        "Clear criteria for when an initiative should be scaled up, changed or stopped.",
        "An open channel for staff to raise concerns without going through layers of management.")),
    SectionTemplate("outlook", ("The road ahead for {subject}", "The outlook for {subject}"), (
        "The practices around {subject} will keep evolving as expectations, technology and regulation shift.",
        "Organisations that build the habit of adapting will handle those shifts better than those that chase each new trend.",
        "The most durable advantage is not a particular method but the capacity to review and adjust methods calmly and regularly.",
        "That capacity is built through small, repeated cycles of trying something, reflecting on it and keeping what works."), (
        "Expect closer attention from customers and regulators to how decisions about {subject} are made.",
        "Expect tools in this area to become easier to adopt, shifting the hard part towards process and skills.",
        "Expect the gap to widen between organisations that learn systematically and those that do not.")),
)  # fmt: skip

# The rest of a report: titles, openings, risks, recommendations, conclusions.
TITLES = ("{Topic}: a practical guide", "{Topic}: what matters and why", "Understanding {topic}",
          "{Topic}: from principles to practice", "A working guide to {topic}")  # fmt: skip
INTRODUCTIONS = (
    "This report looks at {topic}: what {it} involve{s}, how organisations approach {them}, and where effort tends to pay off. It is written for a general professional audience that wants a clear picture without specialist background, and each section makes a small number of practical points that readers can test against their own situation.",
    "{Topic} {is} easy to discuss in the abstract and surprisingly hard to get right. This report sets out the main ideas, the practices that tend to work, and the questions worth asking before committing time and money. It aims to be useful to readers who need to make decisions, not only to follow the debate.",
    "Few subjects generate as much discussion, and as little shared understanding, as {topic}. The aim of this report is to separate the durable ideas from the noise: what the work involves, which approaches are worth copying, and where organisations commonly go wrong in their first attempts.",
)
WHY_NOW = (
    "{Subject} matter{s} now because expectations are rising faster than most organisations are adapting, and choices made in the next year or two will be hard to reverse.",
    "The timing matters: pressure from customers, staff and regulators is increasingly focused on {subject}, and organisations that wait risk inheriting decisions made by others.",
    "The question is pressing today because the cost of standing still on {subject} keeps growing, while the know-how needed to act has never been easier to find.",
)
RISK_HEADINGS = (
    "Risks and limitations",
    "Limitations and risks to weigh",
    "Pitfalls and trade-offs",
)
RISK_LEAD = "No approach to {subject} is free of drawbacks, and it helps to name them openly."
RISKS = (
    "Over-reach: trying to change too much at once spreads attention thin and makes problems hard to diagnose.",
    "Uneven adoption: some groups embrace new ways of working while others quietly keep the old ones, leaving a confusing mix.",
    "Hidden costs: training, upkeep and coordination often cost more than the visible budget line suggests.",
    "Key-person dependence: when knowledge of {subject} sits with one or two experts, progress stalls when they move on.",
    "Trust gaps: poorly documented decisions are hard to defend to regulators, customers or staff.",
    "Context mismatch: practices that work well elsewhere may not fit the size, culture or constraints of your organisation.",
)
MITIGATIONS = "Each of these risks can be mitigated without heavy process: introduce changes in stages that can be reviewed separately, give every practice a named owner and a deputy, budget explicitly for training and upkeep, and record the reasoning behind major decisions."
RECOMMENDATION_HEADINGS = ("Recommendations", "What to do next", "Next steps")
RECOMMENDATIONS = (
    "The most reliable way to make progress on {topic} is to start with a narrow, well-understood problem, show results, and widen the scope only once the first step is working.",
    "Organisations beginning work on {subject} should resist the temptation to do everything at once and instead sequence their effort so that each step builds on the last.",
)
# The ordered first moves the reviser lists under the recommendations.
NEXT_STEPS = (
    "Appoint an owner for {subject} and agree, in writing, what a good outcome looks like.",
    "Choose one contained problem and run a pilot with a team that wants to take part.",
    "Review the pilot openly after a fixed period and decide whether to scale, adjust or stop.",
    "Share what was learned, then repeat the cycle with the next most valuable problem.",
)
CONCLUSION_HEADINGS = ("Conclusion", "Key takeaways", "Final thoughts")
CONCLUSIONS = (
    "Work on {subject} rewards steady, deliberate effort more than grand gestures. The common thread in this report is simple: set a clear goal, choose a few specific practices, give them owners, and review honestly what is working. Organisations that keep those habits will see the effort repaid.",
    "The central message of this report is that progress on {subject} comes from clarity and consistency rather than from any single tool or method. Start with a well-defined problem, make ownership explicit, learn from each step, and widen the effort only once the foundations hold.",
)
MEASUREMENT_PARAGRAPHS = (
    "To tell whether the effort on {subject} is working, agree a small set of indicators at the start (cycle time, error rates, staff and customer feedback), record a baseline, and track them at every review rather than relying on impressions.",
    "Progress on {subject} should be visible, not assumed: pick two or three indicators that reflect the goal, measure them before any change, and revisit them at each review so that decisions rest on evidence.",
)
# The one visible line that tells readers a report (or summary) came from the stand-in model, not
# an LLM. The writer puts it under the title, the reviser keeps it there, the critic ignores it.
# It avoids every cue word the critic looks for, so even a critic that read it would not move.
OFFLINE_NOTICE = "*Written by the refine_kit offline model (a deterministic stand-in, not an LLM), for learning the pipeline.*"
# Paragraph openers that link one section's argument to the last.
CONNECTIVES = ("Building on this, ", "In practice, ", "Beyond that, ", "With that in mind, ",
               "Just as importantly, ", "Seen from another angle, ")  # fmt: skip
# For sections the writer did not produce (human edits, custom sections); {x} is the heading.
GENERIC_BULLETS = (
    "A team applying {x} to one recurring decision and reviewing the outcome after a month.",
    "A one-page guide to {x}, kept short and updated whenever practice changes.",
    "A named person who answers questions about {x} and collects suggestions for improving it.",
)
GENERIC_PARAGRAPHS = (
    "A closer look at {x} is worth the effort in any serious discussion of {subject}. Getting this right shapes which options are realistic, who needs to be involved and how quickly change can happen, so it pays to settle early rather than discover late.",
    "Organisations that handle {x} well tend to give the matter a named owner, write down the assumptions they are making, and revisit those assumptions whenever circumstances change.",
)
# Added when the critic asks about figures but the report states none.
SOURCES_NOTE = "The points in this report draw on widely shared practice rather than on any single study; where figures appear, they are illustrations, not findings."
# A plain-language recap for requests about manner ("make it more engaging").
PLAIN_RECAP = "Put simply, success with {subject} comes down to three questions: what problem {it} {is} meant to solve, who is responsible for {them}, and how the organisation will know the effort is paying off. Keeping those questions in view makes every other decision easier."

# ---------------------------------------------------------------------------------------------
# The critic's wording, by rubric check. IMPROVEMENT_REQUESTS is in priority order: the critic
# asks for the first failing checks ("worst first"); {x} names the sections or figure concerned.

IMPROVEMENT_REQUESTS: dict[str, str] = {
    "title": "Add a level-1 title that names the subject, so readers know at once what the report covers.",
    "intro": "Add an introduction before the first section that sets out what the report covers and who it is for.",
    "sections3": 'Add more body sections, starting with one such as "{x}", so the report covers the subject from at least three angles.',
    "conclusion": 'Close with a conclusion that draws the main takeaways together, instead of ending abruptly after "{x}".',
    "examples_half": "Add concrete examples to {x}, such as named practices or clearly labelled illustrative scenarios, since the text stays general there.",
    "depth_half": "Develop {x} with a further paragraph on how the ideas work day to day, since the text is too thin to persuade.",
    "risks": "Add a section on risks and limitations, so readers see what can go wrong with {subject} and where the approach does not fit.",
    "recs": "Add a recommendations section on what to do next, so readers leave with a clear first move on {subject}.",
    "sections4": 'Add another body section, such as "{x}", so the report looks at {subject} from a further angle.',
    "why_now": "Open the introduction with why {subject} matter{s} now, so a busy reader sees the urgency before the detail.",
    "examples_all": "Add concrete examples to the remaining {x} as well, so every section is equally specific.",
    "depth_all": "Develop the remaining thin {x}, so that every section carries its share of the argument.",
    "mitigations": "Pair each risk with a concrete mitigation, so the risks section helps readers act rather than only worry.",
    "steps": "Turn the recommendations into at least three ordered next steps that a reader could start on this month.",
    "transitions": "Open a few paragraphs with linking phrases, so the report reads as one argument rather than separate notes.",
    "measurement": "Explain how to tell whether the approach is working, naming one or two indicators worth tracking for {subject}.",
    "figures": 'Label figures such as "{x}" as illustrative or give their source, so they are not read as established fact.',
    "readability": "Break up long paragraphs and sentences, so a busy reader can follow the argument on a first pass.",
    "headings": "Make the section headings specific to {subject}, so each one tells the reader what the section argues.",
    "length": "Bring the report to between 200 and 2,000 words, so it has room to make its case without padding.",
}
# Most telling first; a first level is not praised when its second level passes too.
STRENGTHS: dict[str, str] = {
    "mitigations": "Pairs each risk with a practical mitigation",
    "steps": "Sets out concrete, ordered next steps",
    "examples_all": "Every section backs its points with concrete examples",
    "depth_all": "Each section develops its argument rather than asserting it",
    "measurement": "Explains how to tell whether the approach is working",
    "risks": "Acknowledges risks and limitations openly",
    "recs": "Gives readers recommendations to act on",
    "why_now": "Explains why the subject matters now",
    "transitions": "Linking phrases make the sections read as one argument",
    "conclusion": "Ends with a conclusion that draws the main points together",
    "examples_half": "Several sections give concrete examples",
    "depth_half": "Several sections develop their points in some depth",
    "sections4": "Covers the subject from several well-headed angles",
    "sections3": "Organised into clearly headed sections",
    "intro": "An introduction that sets out the scope before the detail",
    "title": "A clear title that names the subject",
}
# How the critic's summary names a failing check.
GAPS: dict[str, str] = {
    "title": "the missing title", "intro": "the missing introduction", "sections3": "too few sections",
    "sections4": "narrow coverage", "conclusion": "the missing conclusion",
    "examples_half": "a lack of concrete examples", "examples_all": "sections without examples",
    "depth_half": "thin sections", "depth_all": "a few underdeveloped sections",
    "risks": "no discussion of risks", "mitigations": "risks without mitigations",
    "recs": "no recommendations", "steps": "recommendations without concrete steps",
    "why_now": "no case for why it matters now", "transitions": "abrupt transitions",
    "measurement": "no way to tell whether it works", "figures": "unlabelled figures",
    "readability": "dense paragraphs", "headings": "generic headings", "length": "its length",
}  # fmt: skip
TRIM_REQUEST = (
    "Trim the report below 2,000 words by cutting repetition, so it respects the reader's time."
)
