"""A structured reading of an expression prompt: which emotions are felt and which are displayed.

Cue words (English and Japanese, the ``EN`` and ``JA`` tables: synonyms, idioms, slang and situations) mark
emotions, smiles, laughter ("exuberant": "laughing", "big grin", 大笑い, 満面の笑み) and blank faces (what is
shown), concealment ("hiding", 隠して), leaking ("shows through", にじむ), inner feelings ("inside", "on the
surface", 内心, 表向き), false or forced smiles ("polite", "customer-service", 作り笑い, 営業), genuine ones
("heartfelt", "crow's feet", 心から, 目尻にしわ), coping smiles ("wry", 苦笑い), mixed feelings ("wistful",
切ない), emotions named as felt together ("at the same time", 入り混じった) and pure or prototypical ones
("openly", "textbook", "full-blown", "not hiding it", 典型的, あからさま, 全開). The reading puts negative
emotions on the felt side when the prompt masks them (such a cue, or a smile or blank face shown over them) and
on both sides when it does not; ``agreement`` compares a reading with a recipe's felt/displayed fields, its
style cues, and, for a pure or plain one-emotion prompt, whether the recipe is that emotion's prototype.
Negation ("not", "without", ～ない) drops an emotion or flips a cue (``FLIPPED``), over a list joined by "or";
a Japanese negation before a pretence (怒ってないふり) keeps the emotion and marks it hidden. Japanese joy named
after a contrast (のに, けど, ながらも) with a negative emotion before it (悲しいのに明るく笑う) is shown, not felt;
an open mouth is laughter with a smile and surprise without one; a grimace (顔をしかめ) is disgust unless anger
is named. Plain kana patterns of three or more characters also match in the other kana script (びくびく, ビクビク).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

EMOTIONS = ("joy", "sadness", "anger", "fear", "disgust", "surprise", "contempt", "embarrassment", "neutral")
MASKABLE = frozenset({"sadness", "anger", "fear", "disgust", "embarrassment"})
"""Emotions the catalog's recipes hide behind a smile or a blank face."""
STYLE = ("smile", "exuberant", "blank", "conceal", "leak", "inner", "fake", "genuine", "coping", "mixed", "pure",
         "both")

# label -> patterns ("a+b": both labels); English patterns match at a word start, Japanese ones anywhere; at one
# position the longest pattern wins, so a phrase ("trembling with rage", 怒りに震え) overrides its words.
EN: dict[str, list[str]] = {
    "joy": [r"happ(?!en)", r"joy", r"delight", r"glad", r"pleas(?:ed|ant|ure)", r"cheer", r"thrill", r"excit",
            r"content(?:ed|ment)", r"bliss", r"merry", r"radian", r"glow", r"giddy", r"jolly", r"sunny", r"tickled",
            r"amus", r"cheery", r"chuffed", r"beatific", r"grateful", r"satisf", r"enjoy", r"glee", r"upbeat",
            r"buoyant", r"lighthearted", r"light-hearted", r"rejoic", r"smiley", r"carefree", r"overflowing with joy",
            r"on cloud nine", r"walking on air", r"tickled pink", r"good news", r"happily", r"pleased as punch",
            r"affectionate", r"loving", r"fond(?!ly remember)", r"stoked", r"hyped", r"psyched", r"buzzing"],
    "sadness": [r"sad", r"inner (?:eye)?brows? (?:up|raised|drawn)", r"sorr(?:ow|y)", r"grie[fv]", r"mourn",
                r"tear(?!ing)", r"cry", r"cried", r"crying", r"weep", r"heart ?br[eo]", r"heart(?:'s| is)? break",
                r"heavy heart", r"funeral", r"melanchol", r"gloom", r"depress", r"deject", r"downcast", r"unhapp",
                r"(?:feel\w*|felt|so|very|a bit|really|pretty) down\b", r"down-?turned", r"turned down",
                r"corners? down", r"hurt", r"lonel", r"blue\b", r"despair", r"devastat", r"forlorn", r"woe", r"upset",
                r"wounded", r"aggriev", r"pain", r"broken", r"teary", r"choked up",
                r"lump in (?:her|his|their|my) throat", r"disappoint", r"regret", r"homesick", r"distraught",
                r"anguish", r"heart ?ach", r"aching heart", r"crushed", r"shattered", r"gutted", r"heartsick",
                r"bereft", r"inconsolabl", r"morose", r"somber", r"sombre", r"glum", r"glassy", r"weepy",
                r"mop(?:e|es|ing)\b",
                r"dismal", r"wretched", r"lament", r"sob", r"desolat", r"crestfallen", r"tearful", r"misty-eyed",
                r"watery eyes", r"doleful", r"long face", r"bereave", r"loss\b", r"despond", r"disconsolat",
                r"down in the dumps", r"heavy-hearted", r"lachrymose", r"in tears", r"bummed"],
    "anger": [r"ang(?:er|ry|rily)", r"rage", r"raging", r"furi", r"fury", r"livid", r"seeth", r"irrit", r"annoy",
              r"mad\b", r"cross\b", r"outrag", r"indign", r"resent", r"hostil", r"glar", r"glower", r"scowl",
              r"temper", r"fum(?:e|ing)", r"boil", r"enrag", r"irate", r"snarl", r"yell", r"shout", r"frown",
              r"gritted", r"clench", r"infuriat", r"incens", r"wrath", r"pissed", r"exasperat", r"vex", r"peeved",
              r"bitter", r"spite", r"grudg", r"lash(?:es|ing)? out", r"huff", r"sulk", r"murder", r"daggers",
              r"death stare", r"irked", r"ticked off", r"steaming", r"heated", r"bristl", r"belligeren", r"menac",
              r"threaten", r"bared teeth", r"teeth bared", r"bar(?:e|es|ing) (?:its|her|his|their) teeth",
              r"fight(?:s|ing)? back (?:angrily|at|against)", r"(?:tight|clenched) jaw", r"jaw (?:tight|clenched)",
              r"fierce", r"ferocious", r"apoplectic", r"ballistic",
              r"hopping mad", r"see(?:s|ing)? red", r"aggress", r"contemptuous rage", r"cranky", r"grumpy",
              r"irritable", r"grouch", r"sullen", r"stern", r"piqued", r"offended", r"insulted",
              r"(?:trembl|shak)\w* with (?:rage|anger|fury)", r"scream(?:s|ing)? at", r"wants? to scream",
              r"brows? (?:slamm|knit|drawn down)", r"knitted brows", r"furrowed brows?", r"irritat", r"steaming mad",
              r"up in arms", r"blow(?:s|ing)? (?:a|his|her) (?:fuse|top|gasket)", r"outraged", r"hot under the collar",
              r"bent out of shape", r"on the warpath", r"spitting mad",
              r"beside (?:her|him|them)sel(?:f|ves) with (?:rage|anger|fury)", r"foaming at the mouth", r"angered",
              r"strangl", r"throttl", r"wring\w* (?:his|her|their) neck",
              r"wants? to (?:kill|punch|slap|hit|strangle|throw|smash|scream|yell)", r"salty"],
    "fear": [r"afraid", r"fear", r"scar(?:ed|y)", r"terri(?:f|bl)", r"frighten", r"fright", r"nervous", r"anxi",
             r"worr", r"panic", r"horr(?:or|if)", r"petrif", r"uneas", r"jitter", r"trembl", r"shak", r"cower",
             r"alarm", r"apprehens", r"spooked", r"timid", r"on edge", r"insecur", r"nerves", r"tense", r"uneasy",
             r"fearful", r"cornered", r"defensive", r"quak", r"shiver", r"intimidat", r"stage fright", r"terror",
             r"frantic", r"trepid", r"shaken", r"scream", r"shriek", r"jumpy", r"skittish", r"hysteri", r"phobi",
             r"paranoi", r"cold sweat", r"sweating bullets", r"white as a sheet", r"aghast", r"fretful", r"fretting",
             r"distress", r"nervy", r"edgy", r"wary", r"threatened", r"in danger", r"dread", r"heart pound",
             r"heart (?:racing|hammering)", r"racing heart", r"knees? knock", r"white-knuckl", r"scared stiff",
             r"jump scare", r"darting", r"freak(?:s|ed|ing)? out", r"spine-chill", r"blood ran cold", r"hair stand",
             r"on tenterhooks", r"turn\w* (?:pale|white)", r"went (?:pale|white)", r"goes (?:pale|white)", r"blanch"],
    "disgust": [r"disgust", r"revuls", r"revolt", r"gross", r"repuls", r"nause", r"distaste", r"repugn", r"sicken",
                r"sick to (?:her|his|their|my) stomach", r"foul", r"stench", r"stink", r"yuck", r"ew+\b", r"icky",
                r"vile", r"sleaz", r"queasy", r"abhor", r"loath", r"creep(?:ed|y)", r"smelly", r"rotten", r"filthy",
                r"nasty", r"distasteful", r"turned off", r"put off", r"retch", r"gag\b",
                r"wrinkl\w* (?:her |his )?nose", r"squeamish", r"vomit", r"puke", r"barf", r"recoil",
                r"turn(?:s|ed|ing)? (?:her|his|their) nose up", r"nose wrinkl", r"grimac(?:e|es|ing) in distaste",
                r"ugh\b", r"unappetiz", r"repel", r"smell\w* (?:horrible|awful|terrible|bad|disgusting|rank)",
                r"spoil(?:ed|t)", r"slimy", r"curl\w* (?:her|his|their) lip", r"lip curl", r"rancid",
                r"gross(?:ed)? out", r"nose (?:scrunch|wrinkle)", r"nose (?:slightly )?wrinkled",
                r"upper lip (?:curl|rais)",
                r"scrunch\w* (?:her|his|their|up (?:her|his|their)) nose", r"turn\w* (?:her|his|their|my) stomach",
                r"stomach-turning", r"makes? (?:her|him|them|me) sick",
                r"tast\w* (?:awful|horrible|terrible|disgusting|vile|foul)",
                r"(?:awful|horrible|terrible|disgusting|nasty|revolting) (?:taste|smell|food|soup|dish|meal|stuff)",
                r"(?:awful|horrible|terrible|disgusting|nasty|revolting) (?:casserole|cooking|cheese|breath)",
                r"icked out"],
    "surprise": [r"didn'?t see (?:that|it) coming", r"surpri", r"astonish", r"amaz", r"shock", r"startl", r"stun",
                 r"gasp", r"taken aback",
                 r"caught off guard", r"jaw[- ]?drop", r"gobsmack", r"flabbergast", r"disbelie", r"can'?t believe",
                 r"whoa", r"wow", r"dumbfound", r"wide[- ]eyed", r"speechless", r"agape",
                 r"unexpected", r"out of nowhere", r"blindsid", r"bewilder", r"appall", r"astound", r"thunderstruck",
                 r"floored", r"taken by surprise", r"incredul", r"stupef", r"staggered", r"blown away", r"mind-blown",
                 r"eyes popping", r"double take", r"dumbstruck", r"awestruck", r"in awe", r"bolt from the blue",
                 r"out of the blue", r"unbelievable", r"raised eyebrows", r"eyebrows raised",
                 r"jaw (?:on|hit|hits) the floor", r"omg", r"oh my god", r"wtf", r"(?<!inner )brows? (?:up|shot up)",
                 r"eyebrows up", r"sudden", r"can'?t believe (?:it|my|her|his|their)", r"no way",
                 r"hand over (?:her|his|their) mouth", r"did a double take"],
    "contempt": [r"contempt", r"scorn", r"disdain", r"sneer", r"smirk", r"condescen", r"smug", r"superior", r"derisi",
                 r"deride", r"mock", r"sarcas", r"eye-?roll", r"roll(?:s|ing)? (?:her|his|their) eyes", r"patroniz",
                 r"patronis", r"haught", r"arrogan", r"disparag", r"belittl", r"snide", r"jeer", r"scoff", r"holier",
                 r"snobb", r"snooty", r"supercilious", r"sniff(?:s|ing)? at", r"unimpressed", r"disrespect",
                 r"looks? down on", r"withering", r"pitying", r"dismiss", r"beneath (?:me|him|her|them|us)",
                 r"look(?:s|ing)? down (?:her|his|their) nose", r"looking down on", r"so unimpressed",
                 r"contemptuous"],
    "embarrassment": [r"embarrass", r"shy", r"blush", r"sheepish", r"bashful", r"awkward", r"self-conscious",
                      r"fluster", r"coy", r"abash", r"sheep", r"mortif", r"humiliat", r"ashamed", r"shame",
                      r"red in the face", r"caught out", r"chagrin", r"demure", r"flattered", r"cringe",
                      r"tongue-tied", r"red-handed", r"shamefaced", r"self-aware", r"flushed", r"red-cheeked",
                      r"rosy-cheeked", r"modest", r"oops", r"whoops", r"slip of the tongue", r"turn(?:s|ing|ed)? pink",
                      r"pink cheeks", r"cheeks? (?:turning |going )?(?:pink|red)",
                      r"caught (?:singing|dancing|staring|picking)", r"red as a beet",
                      r"want(?:s|ed)? the ground to swallow"],
    "neutral": [r"indifferent", r"bored", r"boring", r"unmoved", r"feeling nothing", r"no real feeling",
                r"nothing in particular", r"emotionless", r"apath", r"disinterest", r"detached", r"agreeable",
                r"going through the motions", r"on autopilot", r"unamused", r"no feeling"],
    "smile": [r"smil", r"beam(?:s|ed)?\b", r"grin", r"chuckl", r"giggl", r"cheerful face", r"happy face",
              r"cheerful front", r"pleasant face", r"brave face", r"happy front", r"sunny front", r"cheerful mask",
              r"chirpy", r"all smiles", r"flash(?:es|ing)? a grin", r"sweet(?:ly| as pie)", r"sugary", r"saccharine",
              r"honeyed", r"half-smile"],
    "exuberant": [r"laugh", r"cracking up", r"guffaw", r"roar(?:s|ing)? with", r"cheering", r"overjoy", r"jubila",
                  r"ecsta", r"elat", r"exuberan", r"bursting", r"euphori", r"over the moon", r"hilari", r"in stitches",
                  r"rapturous", r"triumphant", r"big happy",
                  r"(?:big|huge|broad|wide|massive|enormous) (?:happy )?grin", r"shriek\w* with laughter",
                  r"scream\w* with (?:laughter|joy|delight)", r"howl\w* with laughter", r"belly laugh", r"whoop",
                  r"(?:jump|leap)\w* for joy", r"punch\w* the air", r"fist pump", r"beam", r"ear to ear", r"grinning",
                  r"(?:big|huge|broad|wide|massive|enormous) smile", r"radiant", r"super happy"],
    "blank": [r"poker face", r"straight face", r"blank", r"expressionless", r"neutral face", r"neutral expression",
              r"calm", r"composed", r"stoic", r"deadpan", r"impassive", r"stony", r"stone-faced", r"unreadable",
              r"composure", r"collected", r"unflinching", r"holding it together", r"keep(?:s|ing)? it together",
              r"keep(?:s|ing)? (?:a|her|his|their) cool", r"tight-lipped", r"lips pressed", r"pressed lips",
              r"bit(?:es|ing)? (?:her|his|their) (?:tongue|lip)", r"unfazed", r"level face", r"flat face", r"mask",
              r"show(?:s|ing)? nothing", r"gives? nothing away", r"giving nothing away", r"poker-faced",
              r"straight-faced", r"still face", r"held (?:perfectly )?still", r"motionless", r"unmoving",
              r"frozen face", r"controlled face",
              r"controlled expression", r"neutral look", r"unemotional", r"emotionless face", r"masklike",
              r"mask-like", r"wooden", r"stiff upper lip"],
    "conceal": [r"hid(?:e|es|ing|den)", r"off (?:her|his|their|my) face", r"mask(?:s|ing|ed)", r"conceal",
                r"hold(?:s|ing)? (?:back|in)", r"held[- ]in",
                r"held back", r"suppress", r"fight(?:s|ing)? back", r"swallow", r"cover(?:s|ing)", r"trying not to",
                r"tries not to", r"try not to", r"not to show", r"keep(?:s|ing)? from", r"won'?t show", r"bottl",
                r"trying to (?:look|seem|appear|act|be)", r"tries to (?:look|seem|appear|act|be)", r"stifl",
                r"disguis", r"pretend", r"fak(?:e|es|ing) (?:it|being|a|an)", r"behind (?:a|her|his|their|the)",
                r"put(?:s|ting)? on", r"forc(?:e|es|ed|ing)", r"acting",
                r"keep(?:s|ing)? (?:a|her|his|their) (?:cool|composure)", r"barely", r"contain(?:s|ing)",
                r"rein(?:s|ing)? in", r"grit", r"brave", r"cannot hide", r"can'?t hide", r"won'?t see",
                r"refus\w* to (?:cry|show)", r"choke(?:s|d)? back", r"fighting", r"brave front",
                r"put(?:s|ting)? up a front", r"facade", r"façade",
                r"no ?one (?:notices|sees|knows|can tell|would guess|suspects)",
                r"without (?:anyone|anybody) (?:noticing|knowing|seeing)", r"in check", r"restrain",
                r"control(?:s|ling|led)? (?:her|his|their)", r"tamp", r"muffl", r"push(?:es|ing)? down",
                r"bur(?:y|ies|ying)", r"under wraps", r"lid on", r"keep(?:s|ing)? (?:it|them) in",
                r"gloss(?:es|ing)? over", r"paper(?:s|ing)? over", r"cover(?:s|ing)? up", r"camouflag",
                r"not let(?:ting)? (?:it|anything|them|anyone) (?:show|see)", r"pasted[- ]on",
                r"keep(?:s|ing)? up(?= (?:a|the|her|his|their) (?:smile|front|act|brave|happy|cheerful))",
                r"plaster\w*", r"repress", r"smother", r"feign", r"veil"],
    "leak": [r"leak", r"seep", r"shows? through", r"showing through", r"creep(?:s|ing) (?:in|through)",
             r"peek(?:s|ing)? through", r"bleed(?:s|ing)? through", r"tinge",
             r"betray(?:s|ing)? (?:how|what|the|a|(?:her|his|their) (?:true|real))", r"slip(?:s|ping)? through",
             r"break(?:s|ing)? through", r"flicker of", r"gives? (?:her|him|them) away"],
    "inner": [r"inside", r"inwardly", r"inner", r"underneath", r"beneath", r"deep down", r"secret", r"at heart",
              r"in (?:her|his|their) heart", r"privately", r"on the inside", r"within", r"underneath it all",
              r"on the surface", r"outward", r"on the outside", r"under the surface", r"below the surface",
              r"internal"],
    "fake": [r"non-duchenne", r"polite", r"fake", r"false", r"courte", r"social", r"for show", r"professional",
             r"customer[- ]service",
             r"obligator", r"hollow", r"plastic", r"put-on", r"for the camera", r"rehearsed", r"practi[cs]ed",
             r"insincere", r"artificial", r"dutiful", r"perfunctor", r"mechanical", r"cold eyes", r"eyes stay cold",
             r"eyes? (?:don'?t|doesn'?t|do not|does not) (?:smile|reach)", r"mouth only",
             r"only (?:moves|with) the mouth", r"not reach", r"forced smile", r"say cheese", r"photo op",
             r"to be nice", r"being nice", r"small talk", r"nod(?:s|ding)? along", r"out of courtesy", r"manners",
             r"nothing behind", r"for the (?:photo|picture|camera|cameras|photographer)", r"for appearances",
             r"empty smile", r"vacant", r"blank smile", r"reluctant", r"grudging", r"on cue", r"cashier", r"clerk",
             r"receptionist", r"host(?:ess)?\b", r"sales(?:man|woman|person|people)", r"networking", r"headshot",
             r"corporate", r"client",
             r"acquaintance", r"colleague", r"co-?worker", r"without (?:really )?listening",
             r"not (?:really |particularly )?interested", r"uninterested", r"eyes? (?:flat|dead|empty|unmoved)",
             r"flat eyes", r"posed", r"stock smile", r"canned", r"stops? at the mouth", r"pleasantr", r"automatic",
             r"(?:shop|sales|store) (?:assistant|clerk)", r"waitress", r"flight attendant",
             r"because (?:she|he|they|you|i|we) (?:has|have|had) to", r"(?:has|have|had) to smile", r"oblig(?!ator)",
             r"etiquette", r"(?:requires?|required|expected)\b", r"protocol"],
    "genuine": [r"genuin", r"sincere", r"heartfelt", r"real smile", r"a real", r"honest", r"truly", r"duchenne",
                r"authentic", r"from the heart", r"can\'?t fake", r"means? it", r"warm", r"crinkl", r"eyes? creas",
                r"spontaneous",
                r"natural smile", r"true smile", r"reaches the eyes", r"laughing eyes", r"smiling eyes",
                r"crow'?s[- ]feet", r"eyes? (?:smil|light\w* up|lit up|crinkl|twinkl|sparkl)",
                r"reach\w* (?:all the way )?(?:up )?to the eyes", r"sincerely", r"really (?:happy|pleased|glad)",
                r"honestly", r"enjoyment", r"from the bottom of (?:her|his|their|my) heart", r"wholehearted",
                r"real(?= (?:joy|happiness|delight|warmth|pleasure|enjoyment|affection))", r"natural(?:ly)?\b",
                r"(?:nothing|not) forced", r"unforced", r"unguarded", r"real\b"],
    "coping": [r"wry", r"wryly", r"rueful", r"resign", r"defeat", r"helpless", r"bitterly", r"crooked", r"pained",
               r"weakly", r"given up", r"gives up", r"giving up", r"hopeless", r"what else", r"mirthless", r"gallows",
               r"sardonic", r"self-deprecat", r"nothing (?:else )?to do but", r"no choice but", r"put up with",
               r"of course it'?s", r"what can you do", r"oh well", r"grin and bear"],
    "mixed": [r"bittersweet", r"wistful", r"nostalg", r"mixed feelings", r"longing", r"sentimental", r"happy and sad",
              r"sad and happy", r"happy[- ]sad", r"old days", r"reminisc", r"tinged", r"poignant", r"tender",
              r"fond memor", r"(?:touch|hint|note|tinge) of (?:sadness|melancholy|sorrow|grief|wistfulness)",
              r"melanchol\w* smil", r"half[- ]happ", r"half[- ]heartache", r"joy and sorrow", r"sorrow and joy",
              r"empty nest", r"last day of", r"memories", r"happy for (?:her|him|them|you)"],
    "gape": [r"open-mouthed", r"mouth (?:hanging |wide )?open", r"mouth (?:falls|fell|drops|dropped) open"],
    "negation": [r"not\b", r"no\b", r"never", r"without", r"\w+n't", r"nothing"],
    "pure": [r"pure", r"nothing but", r"purely", r"plain", r"plainly", r"utter", r"totally", r"completely", r"simply",
             r"openly",
             r"sheer", r"full-on", r"outright", r"undisguised", r"unmasked", r"frank", r"obvious", r"visibly",
             r"textbook", r"classic", r"basic", r"typical", r"prototyp", r"archetyp", r"stereotyp", r"canonical",
             r"standard", r"full-blown", r"full blown", r"all-out", r"unmistakabl", r"unconcealed", r"unrestrained",
             r"unfiltered", r"nothing hidden", r"nothing else", r"nothing more", r"straightforward",
             r"(?:reference|emotion|expression) (?:chart|sheet|card)",
             r"(?:just|simply|only)(?= (?:plain|pure|sad|angry|mad|happy|scared|afraid|sorrowful))",
             r"(?:just|simply|only)(?= (?:shocked|surprised|disgusted|furious|frightened|terrified|grossed))"],
    "joy+genuine": [r"proud"],
    "coping+smile": [r"laughs? weakly", r"grimace of a smile", r"weak smile", r"tired smile", r"grimac\w* smile",
                     r"can only (?:smile|laugh)", r"forced laugh", r"hollow laugh", r"pained smile",
                     r"sad little laugh"],
    "sadness+coping": [r"miser"],
    "smile+exuberant": [r"beaming"],
    "sadness+anger": [r"resentful", r"bitter tears", r"wronged", r"hurt and angry", r"betrayed", r"betrayal"],
    "both": [r"at the same time", r"at once", r"simultaneously", r"both\b", r"and yet", r"mixed with",
             r"blended with"],
    "mixed+sadness": [r"(?:a little|a bit|slightly|somewhat|kind of|a touch) (?:sad|melancholy|wistful|teary|sorry)"],
}















JA: dict[str, list[str]] = {
    "joy": ["嬉し", "うれし", "喜", "よろこ", "幸せ", "しあわせ", "楽し", "たのし", "歓", "満面", "上機嫌", "ご機嫌",
            "晴れやか", "明るく", "明るい", "ほくほく", "わくわく", "ワクワク", "ルンルン", "浮かれ",
            "うきうき", "ウキウキ", "朗報", "輝", "満足", "ほっこり", "ご満悦", "幸福", "ハッピー", "歓び", "悦",
            "嬉々", "(?:喜び|嬉しさ|うれしさ)が(?:こみ|込み)上げ", "晴れ晴れ", "テンション上が", "テンションが上が",
            "ハイテンション"],
    "sadness": ["悲し", "哀し", "かなし", "寂し", "さみし", "さびし", "淋し", "泣", "涙", "悲嘆", "落ち込",
                "しょんぼり", "沈ん", "がっかり", "失恋", "傷つ", "傷心", "憂", "嘆", "つらい", "辛い", "つらそう",
                "辛そう", "心が痛", "胸が痛", "肩を落と", "しょげ", "うなだれ", "めそめそ", "悲痛", "哀愁", "失望",
                "喪失", "ふさぎ", "塞ぎ", "落胆", "打ちひしが", "しゅん", "べそ", "うるうる", "うつむ",
                "悔やむ", "葬", "通夜", "しくしく", "号泣", "嗚咽", "むせび", "悲哀", "意気消沈", "しょぼん",
                "元気がな", "浮かない顔", "暗い顔", "涙目", "涙が(?:にじ|滲)", "涙を(?:にじ|滲)", "物悲し", "もの悲し",
                "憂鬱", "ゆううつ", "ブルー",
                "胸がつぶれ", "胸が張り裂け", "やるせな", "沈痛", "哀れ", "つらさ", "辛さ", "つらく", "辛く", "つらか",
                "辛か", "目が潤", "瞳が潤", "目を潤", "うるん", "ぴえん", "しんど", "へこん", "へこみ", "凹ん", "凹み",
                "ガーン", "がーん", "こみ上げ", "込み上げ", "やりきれな", "涙ぐ", "うるま", "潤ま", "潤ん", "潤み",
                "うるみ"],
    "anger": ["怒", "憤", "腹が立", "腹を立", "腹立", "頭に来", "頭にき", "ムカ", "むか", "イライラ", "いらいら",
              "苛立", "いらだ", "苛々", "キレ", "ブチギレ", "激昂", "逆上", "恨", "にら", "睨", "青筋", "はらわた",
              "煮えくり", "カンカン", "かんかん", "ぷんぷん", "プンプン", "むっと", "ムッと", "怒鳴", "どなっ",
              "どなり", "どなる", "[眉目]を(?:つり|吊り|釣り)上げ",
              "眉間にしわ", "眉間に皺",
              "眉間にシワ", "(?:怒り|憤り)が(?:こみ|込み)上げ", "威嚇", "憎",
              "激高", "いきり立", "歯ぎしり", "食ってかか", "不機嫌", "ふてくされ", "むくれ", "膨れ", "ふくれっ面",
              "仏頂面", "目くじら", "血相", "カッと", "かっと", "業を煮や", "堪忍袋", "根に持", "激おこ", "おかんむり",
              "立腹", "鬼の形相", "険しい", "苦々し", "ぶち切れ", "逆ギレ", "烈火", "頭に血が", "ムスッ", "むすっ",
              "不服", "憮然", "殺気", "ぎろり", "ギロリ", "八つ当たり", "かちん", "カチン", "怒りに震え", "怒りで震え",
              "怒りにふるえ", "うざ", "ウザ", "ブチ切", "ぶちぎれ", "牙をむ", "歯をむき"],
    "fear": ["怖", "こわ", "恐", "おそろし", "おびえ", "怯え", "びくびく", "ビクビク", "不安", "緊張", "心配", "震え",
             "ふるえ", "青ざめ", "悲鳴", "ぞっと", "がくがく", "ガクガク", "身構", "おどおど", "オドオド", "ひやひや",
             "ヒヤヒヤ", "冷や汗", "戦慄", "おののく", "縮み上が", "追い詰め", "パニック", "気が気でな", "びびっ",
             "ビビっ", "ビビり", "心細", "ドキドキ", "どきどき", "ひきつ", "引きつ",
             "(?<![ぁ-ん])ひっ(?![そくぱこかき])", "ヒッ", "びびり", "凍りつ",
             "血の気が引", "脅え", "戦々恐々", "びくつ", "おっかな", "身震い", "怖じ", "逃げ腰", "縮こま", "すくみ",
             "竦", "肝を冷や", "足がすく", "身の毛がよだ", "ビビる", "びびる", "ハラハラ", "はらはら", "テンパ",
             "焦っ", "焦り", "あせっ"],
    "disgust": ["嫌悪", "嫌そう", "嫌が", "いやそう", "気持ち悪", "きもちわる", "キモ", "気色悪", "不快", "うんざり",
                "げんなり", "吐き気", "吐きそう", "くさい", "臭", "まずい", "不味", "汚", "生理的に",
                "うえっ", "ゲッ", "げっ", "おぞまし", "むかつく臭", "ヘド", "反吐", "虫唾", "虫酸", "胸が悪", "胸糞",
                "嫌な", "いやな", "嫌だ", "いやだ", "イヤだ", "鳥肌", "腐った", "ゲロ", "ドン引き", "嫌気", "おえっ",
                "オエッ", "ぞわっ", "げえっ",
                "ゲェ", "汚らわし", "忌まわし", "うげ", "鼻にしわ", "鼻に皺", "受けつけな", "受け付けな", "きもい",
                "キショ", "きしょ", "ゾワッ", "ゾワゾワ", "ぞわぞわ"],
    "surprise": ["驚", "おどろ", "びっくり", "ビックリ", "目を丸", "仰天", "唖然", "あぜん", "呆然", "ぼうぜん",
                 "ぽかん", "ポカン", "あんぐり", "絶句", "目を見開", "ぎょっ", "ギョッ", "寝耳に水", "思いがけな",
                 "思いもよらな", "思ってもみな", "予想もしな", "予期せぬ",
                 "予期しな", "想定外", "目をまる",
                 "予想外", "信じられ", "はあ？", "はぁ？", "！？", "？！", "!\\?", "(?<![ぁ-ん])え[、！!]", "なにそれ",
                 "何それ", "(?<![ぁ-ん])えっ",
                 "サプライズ", "意外", "不意", "突然", "まさか",
                 "目が点", "たまげ", "あっけに", "息をのむ", "息を呑", "びくっ", "ビクッ", "ぎくっ", "ギクッ",
                 "はっと", "ハッと", "目をむ", "あっと", "(?<![ぁ-ん])ええっ", "目を見は", "目をみは", "目を瞠",
                 "仰け反", "のけぞ", "腰を抜か", "耳を疑", "目を疑",
                 "度肝", "面食ら", "虚を突か", "口あんぐり", "目玉が飛び出", "口に手を当て", "声も出な", "呆気",
                 "信じられな", "マジか", "まじか", "ぱちくり", "パチクリ", "うそでしょ", "ウソでしょ", "嘘でしょ",
                 "ぽかーん", "ポカーン"],
    "contempt": ["軽蔑", "見下", "さげす", "蔑", "小ばか", "小馬鹿", "馬鹿に", "ばかに", "バカに", "鼻で笑", "冷笑",
                 "せせら笑", "せせら", "あざけ", "嘲", "薄笑い", "薄ら笑い", "薄笑", "あざ笑う", "上から目線",
                 "冷ややか", "ふんと", "ふん、", "フン", "白い目", "見くだ", "侮", "あざ笑", "嘲笑", "冷たい目",
                 "冷たい笑", "冷たく笑", "冷ややかな笑", "見おろ",
                 "いやみ", "嫌味", "皮肉", "したり顔", "どや顔", "ドヤ顔", "得意顔", "鼻にかけ", "あきれ顔", "得意げ",
                 "勝ち誇", "冷淡", "鼻であしら", "見下げ", "高慢", "尊大", "冷めた目", "鼻持ちならな", "横目", "フッ",
                 "あきれ果て", "呆れ"],
    "embarrassment": ["照れ", "恥ず", "はずかし", "舌を出", "ぺろっ", "気まず", "きまり悪", "決まり悪", "きまりが悪",
    "ばつが悪",
                      "バツが悪", "赤らめ", "赤面", "もじもじ", "モジモジ", "てれ", "テレ", "頭をかく", "頭を掻",
                      "えへへ", "へへ", "照れくさ", "面映ゆ", "決まりが悪", "ばつの悪", "恥じら", "赤くな", "照れ臭",
                      "きまりわる", "面目な", "照れ屋", "頬を染め", "顔から火", "顔を赤くし", "頬を赤く", "てへ",
                      "テヘ"],
    "neutral": ["無関心", "興味がな", "退屈", "つまらな", "何とも思って", "なんとも思って", "特に何も", "どうでもい",
                "面白くな", "面白くもな", "おもしろくな"],
    "smile": ["笑", "にこやか", "笑いが(?:こみ|込み)上げ", "微笑", "ほほえ", "ほほ笑", "にこに", "にこっ", "にこり",
    "ニコニコ", "ニコッ", "スマイル",
              "にやり", "えがお", "明るくふるま", "明るく振る舞", "明るくふるまう", "へらへら", "ヘラヘラ"],
    "exuberant": ["大笑い", "爆笑", "げらげら", "ゲラゲラ", "腹を抱え", "大はしゃぎ", "声を上げて笑", "声をあげて笑",
                  "高笑", "笑い転げ", "歓声", "口を大きく開けて", "大声で笑", "声を出して笑", "大口を開けて", "歓喜",
                  "狂喜", "有頂天", "最高に", "大はしゃ", "飛び上が", "舞い上が", "ガッツポーズ", "満面の笑み",
                  "笑い声", "にっこにこ", "大きく笑", "歯を見せて笑", "声を立てて笑", "声をたてて笑", "大爆笑",
                  "抱腹絶倒", "笑いが止まらな", "声を上げて喜",
                  "声をあげて喜", "飛び跳ね", "跳びはね", "ウケる"],
    "blank": ["無表情", "平静", "平然", "平気な顔", "真顔", "ポーカーフェイス", "何食わぬ", "感情を殺", "気丈", "淡々",
              "冷静", "すました顔", "澄ました顔", "能面", "涼しい顔", "顔色ひとつ", "顔色一つ", "表情を変えず",
              "表情ひとつ", "唇をかみ", "唇を噛", "唇を結", "口を結", "歯を食いしば", "黙って", "黙り込", "こわばっ",
              "強張", "表情を消", "感情を見せ", "眉ひとつ動かさ", "顔色を変えず", "無感情", "鉄仮面", "仮面のような",
              "表情は動かさ", "表情を動かさ",
              "表情は崩さ", "表情を崩さ", "普通の顔", "無言"],
    "conceal": ["隠", "かくし", "押し殺", "殺して", "こらえ", "堪え", "抑え", "おさえ", "ごまかし", "ごまかす",
                "誤魔化", "悟られ", "見せまい", "出さない", "出さず", "装", "よそお", "取り繕", "とりつくろ",
                "ふりをし", "振りをし", "フリをし", "ふりして", "耐え", "飲み込", "のみこ", "かみしめ", "噛みしめ",
                "噛み締め", "我慢", "がまん", "無理に", "無理して", "むりに", "作っ", "つくっ", "作る", "つくる",
                "見せる",
                "見せて", "気づかれ", "気付かれ", "ばれない", "バレない", "してみせ", "てみせ", "演じ", "健気",
                "けなげ", "強がっ", "強がり", "覆い", "取りつくろ", "何でもない", "なんでもない", "平気そう",
                "平気なふり", "見せない", "(?:顔|表|態度)に(?:は|も)?出さ", "(?:顔|表|態度)に(?:は|も)?出して(?:い)?な",
                "見せていな",
                "見せてな", "秘め", "秘して", "押し込め", "封じ込め", "押し隠", "胸にしま",
                "心にしま", "ぐっと", "抑制", "おくびにも"],
    "leak": ["にじ", "滲", "漏れ", "こらえきれ", "隠しきれ", "隠せな", "あふれ出", "垣間見え", "のぞ", "ちらつ",
             "透けて"],
    "inner": ["内心", "心の中", "心では", "心で", "心は", "心の底では", "腹の中", "腹の底", "本当は", "ほんとうは",
              "本音", "裏では", "裏で", "胸の内", "胸のうち", "奥", "実は", "内側", "本心では", "腹では", "心中",
              "表向き", "表面", "見かけは", "に見え", "ように見え", "外見は", "見た目は", "一見"],
    "fake": ["愛想", "付き合いで", "つきあいで", "目が死ん", "目は死ん", "目が冷め", "目は冷め", "義務", "作り物",
    "営業", "社交辞令", "形だけ", "形ばかり",
             "決まりきっ", "お決まりの", "お客", "客に",
             "記念写真", "写真のため", "会釈", "[てで]おく", "[てで]おこう", "っとく", "っとこう", "貼り付け",
             "貼りつけ", "お世辞", "礼儀", "義理",
             "合わせて笑", "目が笑っていない", "目は笑っていない", "目が笑ってない", "目は笑ってない", "口だけ",
             "口元だけ", "写真用", "お愛想", "お義理", "儀礼", "上辺", "うわべ", "外面", "よそ行き", "よそゆき",
             "建前", "たてまえ", "仕事用", "愛嬌", "場を和ませ", "空気を読", "こもっていな", "こもってな", "心のない",
             "気持ちのない", "おべっか", "ごますり", "ゴマすり", "媚び", "こびた", "感じよく", "形式的", "事務的",
             "機械的", "儀礼的", "気のない", "気の抜けた", "相づち", "相槌", "心ここにあらず", "愛想がいい",
             "調子を合わせ", "空笑い", "仕方なく", "しかたなく", "渋々", "しぶしぶ", "口角だけ", "店員", "接客",
             "取引先", "上っ面", "うわっつら", "ビジネス", "心にもな"],
    "genuine": ["心から", "自然と", "自然に", "心の底から", "本心から", "本物", "自然な", "素直", "本当に嬉",
    "本当にうれし",
                "ほんとうに嬉", "心底うれし", "心底嬉", "目尻を下げ", "目を細め", "目が細", "目も笑", "屈託な",
                "屈託の",
                "満ち足り", "穏やか", "温か", "あたたか", "目元までほころ", "目が笑って", "目も笑って", "ほんとの",
                "本当の笑顔", "ほんとうの笑顔", "心がこも", "目尻", "じんわり", "素の", "作っていな", "作ってな",
                "作らな", "作らず", "飾らな", "飾り気", "ありのまま"],
    "coping": ["力なく", "力無く", "弱々し", "よわよわし", "しかない", "あきらめ", "諦め", "情けな", "みじめ", "惨め",
               "疲れ切", "疲れきっ", "どうにでもなれ", "やけくそ", "ヤケクソ", "投げやり", "開き直", "力のない",
               "弱く笑", "ため息", "ためいき",
               "力ない", "やり過ご", "受け止め", "負けを認め"],
    "mixed": ["切な", "ほろり", "ほろっ", "せつな", "ほろにが", "懐かし", "なつかし", "ほろ苦", "泣き笑", "感慨",
    "しみじみ", "名残惜し", "郷愁", "感無量",
              "思い出", "複雑な"],
    "embarrassment+smile": ["はにか"],
    "joy+exuberant": ["大喜び", "はしゃ", "喜色満面"],
    "smile+genuine": ["にっこり", "ほころ", "破顔", "目元がゆる", "目元をゆる", "頬がゆる", "頬をゆる", "目尻にしわ",
                      "目尻に皺"],
    "pure": ["純粋", "完全に", "すっかり", "あからさま", "素直に", "露骨", "むき出し", "あらわ", "まさに", "ただただ",
             "ひたすら", "まるごと", "丸出し", "全開", "典型", "いかにも", "お手本", "教科書", "隠さず", "隠さな",
             "隠そうとも", "包み隠さ", "隠しもせ", "ストレートに", "そのまま", "ただ(?=[悲怒驚怖嫌喜笑泣び])",
             "全力で", "思いきり", "思いっきり", "素直な"],
    "fear+anger": ["窮鼠"],
    "sadness+coping": ["トホホ", "とほほ"],
    "sadness+anger": ["悔し", "くやし", "悔し涙", "裏切", "恨め", "うらめし"],
    "fake+smile": ["作り笑", "つくり笑", "愛想笑", "お愛想笑", "営業スマイル", "作り笑顔", "つくり笑顔",
                   "とりあえず笑", "お世辞笑", "社交的な笑"],
    "coping+smile": ["苦笑", "自嘲", "乾いた笑", "かすかに笑", "寂しく笑", "虚しく笑", "むなしく笑", "苦い笑",
                     "苦く笑"],
    "grimace": ["顔をしかめ", "しかめ"],
    "gape": ["口を開け", "口をあけ", "口を開い", "口が開", "口があい"],
    "contrast": ["のに", "けど", "けれど", "ながらも", "つつも", "くせに", "にもかかわらず", "にも関わらず"],
    "both": ["同時に", "と同時", "入り混じ", "入りまじ", "混じっ", "まじっ", "混ざ", "まざっ", "交じ", "交ざ"],
    "mixed+sadness": ["少し寂し", "少しさみし", "ちょっと寂し", "ちょっとさみし", "どこか寂し", "どこかさみし",
                      "少し悲し", "ちょっぴり寂し", "ちょっぴり悲し", "少し切な"],
}














LIST_GAP = re.compile(r"\w*,?\s*(?:or|nor)\s", re.IGNORECASE)
JA_NEGATION = re.compile(r"[くもはでじゃっていん]{0,4}(?:ない|なく|ません)")
JA_PRETENCE = re.compile(r"(?:ふり|フリ|振り|そぶり|素振り|様子を|顔をし|顔で)")
"""After a negation, a pretence: 怒ってないふり, 平気じゃないそぶり... hide the emotion rather than deny it."""
NEGATABLE = frozenset(EMOTIONS) - {"neutral"} | {"smile", "exuberant"}
FLIPPED = {"joy": "fake", "fake": "genuine", "genuine": "fake", "conceal": "pure"}
"""What a negated cue reads as: "no joy in the smile", "作り笑いじゃない" (not fake: genuine), "not hiding it"
(open: pure; English only, as Japanese concealment cues such as 出さない end in their own negation). Other negated
emotions and smiles are dropped."""
MASKING = frozenset({"conceal", "leak", "inner", "fake", "coping", "blank"})
"""Cues that a negative emotion named in the prompt is felt but not shown."""
KINDS = frozenset({"conceal", "leak", "inner", "fake", "coping", "genuine", "mixed"})
"""Style cues that name a recipe other than the emotion's prototype (a pure prompt with one of them is not plain)."""


def _kana_variant(pattern: str) -> str | None:
    """The other script's spelling of a plain hiragana or katakana pattern of three or more characters (びくびく,
    ビクビク); shorter ones (キレ, フン) would match inside other words."""
    if len(pattern) < 3:
        return None
    if all("\u3041" <= c <= "\u3096" or c == "ー" for c in pattern):
        return "".join(chr(ord(c) + 0x60) if c != "ー" else c for c in pattern)
    if all("\u30a1" <= c <= "\u30f6" or c == "ー" for c in pattern):
        return "".join(chr(ord(c) - 0x60) if c != "ー" else c for c in pattern)
    return None


def _compile(table: dict[str, list[str]], word_start: bool) -> tuple[re.Pattern, list[str]]:
    """One alternation over every pattern (and, for Japanese, its kana variant), longest first, with a named group
    per label."""
    entries = [(p, label) for label, patterns in table.items() for p in patterns]
    if not word_start:
        known = {p for p, _ in entries}
        entries += [(v, label) for p, label in entries if (v := _kana_variant(p)) and v not in known]
    entries.sort(key=lambda e: -len(e[0]))
    labels = [label for _, label in entries]
    prefix = r"\b" if word_start else ""
    return re.compile("|".join(f"(?P<g{i}>{prefix}{p})" for i, (p, _) in enumerate(entries)), re.IGNORECASE), labels


_PATTERNS = {"en": _compile(EN, True), "ja": _compile(JA, False)}


@dataclass(frozen=True)
class Reading:
    """Felt and displayed emotion weights (read from a prompt, or a recipe's fields) and style cues."""

    felt: dict[str, float] = field(default_factory=dict)
    displayed: dict[str, float] = field(default_factory=dict)
    style: dict[str, float] = field(default_factory=dict)
    """Cues of how the face is shown (laughing, forced, genuine, ...), as 0/1 or a share of a recipe's captions."""
    basic: bool = False
    """A recipe of one emotion, felt and shown."""
    prototype: bool = False
    """A basic recipe that is the emotion's prototype (a control): what "pure", "textbook", "openly" ... ask for."""

    def __bool__(self) -> bool:
        return bool(self.felt or self.displayed)


def mentions(text: str, language: str) -> list[str]:
    """The cue labels found in ``text``, in order; a negated smile or joy word reads as "fake", a negated
    emotion is dropped."""
    pattern, labels = _PATTERNS[language]
    kept: list[str] = []
    negation_end = -100
    for m in pattern.finditer(text):
        names = labels[int(m.lastgroup[1:])]
        if names == "negation":
            negation_end = m.end()
            continue
        ja_negation = JA_NEGATION.match(text, m.end()) if language == "ja" else None
        if ja_negation and JA_PRETENCE.match(text, ja_negation.end()):  # 怒ってないふり: angry, hiding it
            kept.append("conceal")
            ja_negation = None
        negated = m.start() - negation_end <= 10 or ja_negation is not None
        # "not happy or angry": a negation carries over a list of cues joined by "or" / "nor"
        negation_end = m.end() if negated and language == "en" and LIST_GAP.match(text, m.end()) else -100
        for label in names.split("+"):
            if negated and (label in NEGATABLE or label in FLIPPED):
                flipped = FLIPPED.get(label)
                if flipped is not None:
                    kept.append(label if language == "ja" and label == "conceal" else flipped)
                continue
            kept.append(label)
    return kept


def read(text: str, language: str) -> Reading:
    """The felt/displayed reading of ``text`` (``language`` "en" or "ja")."""
    cues = mentions(text, language)
    if "contrast" in cues:  # 悲しいのに明るく笑う: joy after a contrast with a negative emotion is shown, not felt
        i = cues.index("contrast")
        if MASKABLE & set(cues[:i]) and "joy" not in cues[:i]:
            cues = cues[:i] + ["smile" if c == "joy" else c for c in cues[i + 1:]]
    # an open mouth is laughter with a smile ("a big grin, mouth open"), surprise without one
    gape = "exuberant" if {"smile", "exuberant"} & set(cues) else "surprise"
    cues = [gape if c == "gape" else c for c in cues]
    # a grimace (顔をしかめ) is disgust, or a frown of anger where the prompt names anger ("顔をしかめて怒る")
    grimace = [] if "anger" in cues else ["disgust"]
    cues = [g for c in cues for g in (grimace if c == "grimace" else [c])]
    has = set(cues)
    emotions = {label: 1.0 for label in cues if label in EMOTIONS}
    hidden = {e: w for e, w in emotions.items() if e in MASKABLE}
    open_ = {e: w for e, w in emotions.items() if e in ("surprise", "contempt")}
    if "mixed" in has:
        open_ |= {"joy": 1.0, "sadness": 1.0}
    # a smirk of contempt is not a smile of joy (unless joy or a masked emotion is named too); coping ("wry",
    # "miserable") is about a smile only
    smirk = "contempt" in emotions and not {"joy", *hidden} & emotions.keys()
    smile = bool(has & {"smile", "exuberant"}) and not smirk
    smile = smile or ("fake" in has and not emotions)  # "a customer-service face": a false smile
    if not smile:
        has.discard("coping")
    # a smile over a negative emotion masks it, unless the prompt also names joy itself (then both are felt)
    # a pure prompt ("the textbook angry face, lips pressed") describes the open face: its blank cues mask nothing
    # so does one that names its emotions as felt together ("smiling and sad at the same time", 悲しみと怒りが混じった)
    masking = bool(has & MASKING - ({"blank"} if has & {"pure", "both"} else set())) or (
        smile and not {"mixed", "joy", "both"} & has)
    if "coping" in has and not hidden.keys() - {"sadness"}:
        felt, displayed = {"sadness": 1.0}, {"joy": 1.0, "coping": 1.0}
    elif hidden and masking and "mixed" not in has:
        felt = hidden | open_
        displayed = {"joy": 1.0} if smile or "joy" in emotions else {"neutral": 1.0}
    elif hidden:
        felt = hidden | open_ | ({"joy": 1.0} if "joy" in emotions or smile else {})
        displayed = dict(felt)
    elif smile or "joy" in emotions:
        # the majority decides "社交辞令としてにっこりしておく" (two false cues, one genuine)
        fake = sum(c in ("fake", "conceal") for c in cues) + ("neutral" in emotions) > cues.count("genuine")
        felt = ({"neutral": 1.0} if fake else {"joy": 1.0}) | open_
        displayed = {"joy": 1.0} | open_
    elif open_:
        felt, displayed = dict(open_), dict(open_)
    elif "blank" in has or "neutral" in emotions:
        felt, displayed = {"neutral": 1.0}, {"neutral": 1.0}
    else:
        felt, displayed = {}, {}
    style = {c: 1.0 for c in STYLE if c in has}
    return Reading(felt, displayed, style)


def recipe_reading(felt: str, displayed: str, captions: dict[str, list[str]] | None = None,
                   prototype: bool = False) -> Reading:
    """A recipe's felt/displayed fields ("anger", "joy+surprise", "coping smile", "mixed") as a reading, with the
    share of its captions (``{"en": [...], "ja": [...]}``) that show each style cue; ``prototype``: a basic recipe
    that is its emotion's prototype (the catalog's ``*_prototype`` controls)."""
    felt_w = {e: 1.0 for e in felt.split("+")}
    if displayed == "mixed":
        shown = dict(felt_w)
    elif displayed == "coping smile":
        shown = {"joy": 1.0, "coping": 1.0}
    else:
        shown = {e: 1.0 for e in displayed.split("+")}
    styles = [read(text, language).style for language, texts in (captions or {}).items() for text in texts]
    style = {c: sum(s.get(c, 0.0) for s in styles) / len(styles) for c in STYLE} if styles else {}
    basic = felt_w == shown and len(felt_w) == 1
    return Reading(felt_w, shown, {c: w for c, w in style.items() if w}, basic=basic, prototype=basic and prototype)


def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
    dot = sum(w * b.get(k, 0.0) for k, w in a.items())
    norm = math.sqrt(sum(w * w for w in a.values()) * sum(w * w for w in b.values()))
    return dot / norm if norm else 0.0


def agreement(prompt: Reading, recipe: Reading, style_weight: float = 0.25) -> float:
    """How well a prompt's reading matches a recipe's: the felt and displayed cosines, averaged, plus
    ``style_weight`` times the style cosine and a pure or plain (one emotion, nothing else) prompt's match
    with a basic recipe (0 for a prompt without any emotion cue)."""
    if not prompt:
        return 0.0
    emotion = (_cosine(prompt.felt, recipe.felt) + _cosine(prompt.displayed, recipe.displayed)) / 2
    single = prompt.felt == prompt.displayed and len(prompt.felt) == 1
    # a prompt of a smile's kind ("completely genuine", "totally fake") or of masking asks for no prototype; a
    # laughing or beaming one (exuberant) asks for the full, prototype face of its emotion
    pure = (recipe.prototype and single and not prompt.style.keys() & KINDS
            and ("pure" in prompt.style or "exuberant" in prompt.style or not prompt.style.keys() - {"pure"}))
    return emotion + style_weight * (_cosine(prompt.style, recipe.style) + pure)
