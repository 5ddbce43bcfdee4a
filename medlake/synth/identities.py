"""Synthetic people and places: patients, staff and sites, with realistic Taiwanese identifiers.

Every value here is planted somewhere in the export and recorded in the truth file, so values must be
distinctive enough that a substring search in de-identified output means something (no 1-2 character
values; chart numbers have 8 digits).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

SURNAMES = [
    ("陳", "CHEN"), ("林", "LIN"), ("黃", "HUANG"), ("張", "CHANG"), ("李", "LI"), ("王", "WANG"),
    ("吳", "WU"), ("劉", "LIU"), ("蔡", "TSAI"), ("楊", "YANG"), ("許", "HSU"), ("鄭", "CHENG"),
    ("謝", "HSIEH"), ("洪", "HUNG"), ("郭", "KUO"), ("邱", "CHIU"), ("曾", "TSENG"), ("廖", "LIAO"),
    ("賴", "LAI"), ("周", "CHOU"), ("葉", "YEH"), ("蘇", "SU"), ("莊", "CHUANG"), ("呂", "LU"),
]
GIVEN = [
    ("怡", "YI"), ("君", "CHUN"), ("志", "CHIH"), ("明", "MING"), ("家", "CHIA"), ("豪", "HAO"),
    ("雅", "YA"), ("婷", "TING"), ("宏", "HUNG"), ("淑", "SHU"), ("芬", "FEN"), ("美", "MEI"),
    ("玲", "LING"), ("建", "CHIEN"), ("華", "HUA"), ("文", "WEN"), ("欣", "HSIN"), ("承", "CHENG"),
    ("翰", "HAN"), ("冠", "KUAN"), ("慧", "HUI"), ("柏", "PO"), ("宇", "YU"), ("秀", "HSIU"),
    ("英", "YING"), ("國", "KUO"), ("榮", "JUNG"), ("子", "TZU"), ("靜", "CHING"), ("品", "PIN"),
    ("睿", "JUI"), ("祥", "HSIANG"), ("麗", "LI"), ("珍", "CHEN"), ("瑋", "WEI"), ("凱", "KAI"),
]
ROADS_EN = ["Zhongshan S. Rd.", "Shipai Rd. Sec. 2", "Wuxing St.", "Changde St.", "Roosevelt Rd. Sec. 4"]
CITIES = [
    ("臺北市", ["中正區", "大安區", "信義區", "士林區", "北投區", "內湖區"]),
    ("新北市", ["板橋區", "新莊區", "中和區", "永和區", "三重區", "淡水區"]),
    ("桃園市", ["桃園區", "中壢區", "龜山區"]),
]
ROADS = ["中山南路", "忠孝東路", "仁愛路", "石牌路二段", "吳興街", "復興北路", "民權西路", "承德路三段",
         "文化路一段", "中正路", "民生東路五段", "和平東路二段"]
# Letter codes of the Taiwanese national ID (ROC ID) checksum.
_ID_LETTERS = dict(zip("ABCDEFGHJKLMNPQRSTUVXYWZIO", range(10, 36)))


def national_id(rng: random.Random, sex: str) -> str:
    """A valid ROC national ID: letter, 1 (male) / 2 (female), 7 digits, check digit."""
    letter = rng.choice("ABCDEFGHJKLMNPQRSTUVXYWZIO"[:20])
    digits = [1 if sex == "M" else 2] + [rng.randrange(10) for _ in range(7)]
    code = _ID_LETTERS[letter]
    total = code // 10 + (code % 10) * 9 + sum(d * w for d, w in zip(digits, range(8, 0, -1)))
    return letter + "".join(map(str, digits)) + str((10 - total % 10) % 10)


def national_id_valid(value: str) -> bool:
    if len(value) != 10 or value[0] not in _ID_LETTERS or not value[1:].isdigit():
        return False
    code = _ID_LETTERS[value[0]]
    d = [int(c) for c in value[1:]]
    total = code // 10 + (code % 10) * 9 + sum(x * w for x, w in zip(d[:8], range(8, 0, -1))) + d[8]
    return value[1] in "12" and total % 10 == 0


@dataclass(frozen=True)
class Patient:
    team: str
    chart_no: str            # the hospital's patient_id (the consent key)
    national_id: str
    name_zh: str             # 陳怡君
    surname_zh: str
    given_zh: str
    name_dicom: str          # CHEN^YI-CHUN
    birth_date: dt.date
    sex: str
    address: str
    phone: str
    consent_class: str

    @property
    def patient_id(self) -> str:
        return self.chart_no

    @property
    def name_text(self) -> str:      # as typed in free text: CHEN YI-CHUN
        return self.name_dicom.replace("^", " ")

    @property
    def name_file(self) -> str:      # as used in file and folder names: CHEN_YI-CHUN
        return self.name_dicom.replace("^", "_")

    @property
    def name_pn_ideographic(self) -> str:   # the ideographic PN component group: 陳^怡君
        return f"{self.surname_zh}^{self.given_zh}"

    @property
    def birth_dicom(self) -> str:
        return self.birth_date.strftime("%Y%m%d")


def _name(rng: random.Random) -> tuple[str, str, str, str]:
    s_zh, s_en = rng.choice(SURNAMES)
    (g1, e1), (g2, e2) = rng.sample(GIVEN, 2)
    return s_zh, g1 + g2, f"{s_en}^{e1}-{e2}"[:], s_zh + g1 + g2


def make_patient(rng: random.Random, team: str, taken_charts: set[str], taken_names: set[str]) -> Patient:
    sex = rng.choice("MF")
    for attempt in range(30):
        s_zh, g_zh, dicom_name, zh = _name(rng)
        if zh not in taken_names or attempt == 29:   # a big cohort may legitimately share names
            break
    taken_names.add(zh)
    while True:
        chart = str(rng.randrange(10_000_000, 99_999_999))
        if chart not in taken_charts:
            taken_charts.add(chart)
            break
    city, districts = rng.choice(CITIES)
    address = f"{city}{rng.choice(districts)}{rng.choice(ROADS)}{rng.randrange(1, 400)}號{rng.randrange(2, 16)}樓"
    phone = f"09{rng.randrange(10, 99)}-{rng.randrange(100, 999)}-{rng.randrange(100, 999)}"
    birth = dt.date(1935, 1, 1) + dt.timedelta(days=rng.randrange(0, 70 * 365))
    return Patient(team=team, chart_no=chart, national_id=national_id(rng, sex), name_zh=zh, surname_zh=s_zh,
                   given_zh=g_zh, name_dicom=dicom_name, birth_date=birth, sex=sex, address=address,
                   phone=phone, consent_class=rng.choice("AABBCCC"))


@dataclass(frozen=True)
class Site:
    """A team's hospital as it appears in headers: staff, stations and devices."""
    team: str
    institution: str
    institution_address: str
    institution_address_en: str
    physicians: tuple[str, ...]
    operators: tuple[str, ...]
    stations: dict[str, str]   # modality -> StationName
    serials: dict[str, str]    # modality -> DeviceSerialNumber

    def station(self, modality: str) -> str:
        return self.stations[modality]

    def serial(self, modality: str) -> str:
        return self.serials[modality]


MODALITIES = ("CT", "MR", "CR", "DX", "XA", "US", "IVUS", "IVOCT", "NM", "OP", "HD", "SM")


def make_site(rng: random.Random, team_code: str, team_name_en: str, team_name_zh: str) -> Site:
    staff: list[str] = []
    seen: set[str] = set()
    while len(staff) < 10:
        _, _, n, _ = _name(rng)
        if n not in seen:
            seen.add(n)
            staff.append(n)
    floor = rng.randrange(2, 9)
    return Site(
        team=team_code.lower(),
        institution=f"{team_name_en} Dept. of Medical Imaging {floor}F",
        institution_address=f"{team_name_zh} 影像醫學部 臺北市{rng.choice(ROADS)}{rng.randrange(1, 300)}號",
        institution_address_en=f"No. {rng.randrange(1, 300)}, {rng.choice(ROADS_EN)}, Taipei, Taiwan",
        physicians=tuple(staff[:6]),
        operators=tuple(staff[6:]),
        stations={m: f"{team_code}-{m}{rng.randrange(10, 99)}-{rng.choice('ABCDEFGH')}{floor}F" for m in MODALITIES},
        serials={m: f"SN{rng.randrange(10_000_000, 99_999_999)}" for m in MODALITIES},
    )
