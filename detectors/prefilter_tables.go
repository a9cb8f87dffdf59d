//go:build !prefiltermeasured

package detectors

// The tables that steer which q-grams of a keyword the prefilter samples
// (newPrefilter, rarestGrams): byteFreq, trigramAnchors and
// commonTrigramText. They were measured once, on a machine whose files are
// known only by the directories named below; the script was not kept.
// internal/cmd/prefiltergen measures the same way (go generate ./detectors
// writes its measurement of this machine to prefilter_tables_measured.go,
// which only the build tag prefiltermeasured compiles in). Its measurement
// of a Debian 12 machine's /usr, /etc and Go and Python sources
// (2026-12-06: 1 GiB of ELF files, 277 MiB of text for the bytes, 498
// MiB of text for the trigrams) made the filter examine more on make
// bench's detectors data, with the same keyword hits
// (BenchmarkPrefilterCandidates, without and with -tags
// prefiltermeasured): 1,058,127 words instead of 854,705 (+24%) in the
// scalar loop and 236,709 lanes instead of 131,592 (+80%) past the vector
// filters' bitsets. So these tables stay. (Timings of the two, on the
// shared 2-core machine at load average 4 to 5, varied more between runs
// than between tables.) To replace them, compare the same way and copy a
// better measurement here, without its build tag.

// byteFreq is the frequency of each byte value in disk content (in 1/65536,
// at least 1), measured once over an even mix of executables and shared
// libraries (/usr/bin, /usr/lib) and text (/usr/share/doc, /etc).
var byteFreq = [256]uint16{
	11065, 714, 340, 267, 294, 261, 129, 165, 491, 230, 620, 90, 128, 128, 269, 987,
	307, 91, 113, 73, 98, 90, 63, 84, 193, 49, 51, 41, 90, 47, 44, 278,
	2825, 53, 72, 93, 679, 128, 40, 90, 280, 186, 134, 103, 150, 371, 500, 254,
	377, 490, 246, 179, 201, 215, 151, 144, 251, 283, 307, 123, 161, 170, 92, 46,
	225, 638, 183, 178, 513, 302, 120, 117, 1747, 388, 77, 84, 549, 215, 128, 99,
	195, 55, 133, 199, 233, 162, 89, 86, 106, 67, 57, 109, 114, 130, 65, 375,
	129, 1047, 337, 706, 680, 1630, 597, 415, 468, 1072, 77, 200, 689, 503, 1051, 1081,
	559, 54, 909, 953, 1454, 564, 195, 198, 177, 273, 84, 49, 108, 57, 63, 51,
	181, 75, 44, 430, 341, 420, 60, 50, 91, 1033, 33, 699, 62, 459, 54, 47,
	115, 33, 34, 37, 57, 42, 31, 33, 58, 33, 31, 30, 43, 36, 30, 31,
	63, 30, 31, 31, 37, 31, 30, 28, 56, 31, 33, 34, 42, 31, 30, 49,
	64, 31, 31, 32, 47, 36, 98, 72, 130, 100, 147, 99, 98, 58, 97, 71,
	362, 133, 93, 162, 121, 84, 110, 181, 75, 77, 48, 36, 44, 39, 41, 38,
	96, 51, 90, 43, 42, 47, 44, 42, 71, 42, 44, 67, 38, 38, 51, 94,
	97, 49, 58, 41, 54, 41, 56, 66, 501, 249, 60, 108, 81, 70, 65, 112,
	85, 45, 75, 117, 52, 56, 125, 87, 132, 82, 96, 101, 112, 155, 214, 1740,
}

// trigramAnchors is the measured frequency (parts per million of trigram
// positions in the text commonTrigramText was counted in) of the trigrams
// of rank 1, 10, 100, 1000 and 4000.
var trigramAnchors = [...][2]float64{{1, 6535}, {10, 2588}, {100, 850}, {1000, 188}, {4000, 35}}

// commonTrigramText holds the 4096 most frequent trigrams, most frequent
// first, in text files (/usr/share/doc, man pages, /etc, Go and Python
// sources), counted with bit 5 of every byte cleared (so "the", "THE" and
// "The" are one entry, and so are " " and NUL) and written in their most
// common form.
const commonTrigramText = "" +
	"   \n   ththe =  inhe intion  =ing---ed tio= 0 co 0x toon  reanderrcomentis to forateconng or  fi" +
	"er sys anes nd terin ile foallfil\t\n ati,\n sta \n str ma no de\n\n  is.\n\n  \nle e t seadd li" +
	"libproame=== erers ofble\\&. pruselinreant \n\t\nver stectted a setre of onsan  pa\t\n\t\n\tiit " +
	"se notabl\n\tsresmane i widatnamithat  ad.\n estuinnste ss ae cess usthiommnte',  uiif .\n\t been " +
	"s torttestrimene aineth  bysioget000te ratstet tpatgenhanfixrin on {\nthouncas cal\n\n\thisagener" +
	" dochaturot , 'mitst wit~~~perist sin tove{\n\tain ch wh\t: poread unonf00\n nehereraptr ca>\n\n" +
	"ode.coly  alll d actiys_ sytine f0\n\ts iserfun  'tra\t, s fure buencrecorgts insendby s.\n sutim" +
	"sigrr \n\t\taseles',\nianignd betutordefimerro\tif  < 20 exd i  s moch romretprerordebe.\n arme " +
	"are\n\tracktypal ce  dithaurn\",\nrge: a// tem frtatntpcheang, uve opet, newe onfi haultfroockcat" +
	"tpt201hatvald tfig.orlocypeert uppariteptingeemodirunsix tr(  text temat ge0x1r t  \"ontene\\frt i" +
	"e dnta asoreomptch}\n\tcesnalt sdd  - sesediderakee, icaom>pachenassathace, ert cod\n20outoptf t" +
	"ns be \n\n2 itelemodmaiizeails: sine plentopargtrurs m>\nwheaut me202ge nce sorsiranom y tevebia" +
	"t an ainc\tsyereleauilid \n\te loet ebit  redapp200 if --harmesdes  -sedystire  i entabe   nact " +
	":  ...oseritimpkeyt fbuindetars oildrg>\n//trernolowtaldede: indld , spen oprem0\n\nlatlicatcssi" +
	"nitorms, speoinnetmovsel\n\n\n  rigurrn, asca  (disry de  at0x8s sn ir emakut flat calidingure m" +
	"}\n\n\t\n\nmpl waillive\trentrhon clle.efie lpecdit vamon= eattifipleddre nmmiart tr: rs waulrel" +
	"itinc  oran.ren\n\\fe\n , 0poisup\t}\neriss d s:\n nedt eiced,  e1ow e1 e rmmaini\n\t}ew 0x2gnuram" +
	"s\n d o lecloataeteonebus\n\nfpliree,\n\tyth_seefaettntieas spe u poideupp\n}\nr aar elfiss2\n\t" +
	"s noff vet otenlosck   cena.\n.pyternsizvar talasour\n- racrmapdattitai0, updoun_, faun cllostsmpo" +
	", pyteequlagrepntsbytpr s cworroulis { &. \n cwhint,secgescane bes.ppostone g td f\nfupriact020fie" +
	"eedn o  ao tveno naridecdoc, t\t,\nc ( weafeuctue safet__re\t  n s100f eethecocla\t (hor0x4.po da" +
	" +0do nsas  e wn  ordumeminichon.ad  ra\n\t exputhfinckeysces:r  or\tiesed- apeamdencorinfruc  p" +
	"r =uni!= 4\n\t !=_gereg\n m\t\t\tiocsocnctg>\n\\fieckroc sh\n\n/arae emet.c ropic ity  uecickatex" +
	"onl ke imssereftror c\ncobininkede\\fbibc: dberorylue fu  fe.p\n\t(lanervmord.\nmedn fnfoe\n\tel " +
	"reqocacto= sr sr: nly mirn\n@dertiard\t {undhecrce: fno achn.o:= fe.fre :=ninagspe \n\tper(marncy" +
	"eat0\t\n fa\nthtic 0 er.\n\ttspad mmerfer8\n\tnowbugr, s galuds stir ion/led\tsibutimir\t tmpd c" +
	"curt.\npla(fdostast (r\n# eme\tipruniel1\n\titsens.  unts (n, als }\nesedevam arcger-- uledepd  " +
	"n mighrotcolque ured.mbeposo a\\u0: uacc\n.rls n b aussudbuson acbas_indon avlog sas mt32\n.i, i" +
	"willlecreampscrixen p\n\ncsenke us (0x\n sndisou  dfr\nwriutigs cascluriswinups (e\n -criddeami, _" +
	"s by: 0 {uesp  nt3oulgroty numpol ed. twar1\t\nit\nrrehicte:rn e',hasexeoli010ial // lavict\n\nor:" +
	"y aurcurgt bfictann wshoolllares\n_p0nonem iftginrip/liomearyoduputote\n dgnat way /tm  mancevians" +
	"lerespooltiarevttetivtoon.\nlud-bysrc tirianclsue/ {dreon-otoloar fhin; uc: ust_co\naulitude  w cr" +
	" bos rt drov\n.\\cy=inu>  \t.\n/ t\n\n-x80itt\ters d(\t s piligneuteeptantcifavencolabootn d###erm" +
	"abi scr ot p\n.pd work&.\nother\n\n\t_inaby:n\n lt  @@he\negeccedle _,n\n}; d, cmemppl bandot m\n\ta" +
	"o sadeany\n aorilf.bufnabrchhesl  oerre\non\nrtye gso -ofed\nnoeleta song\trtoadnnendlmsglti fl.pp" +
	"simkaggrapp\ntilric\t\teliechiescr(e nunsi>\n \ndare.y sh t\t\t,_mad psh bc_: #p; tlsvedmac\n\tb" +
	"e\n.g an e nift_op;ketownmulnatght{ ilem.inshagitsch, nhavbacarsk  pkgquiiens_siseno(\n\tman/del" +
	"6\n\tnor(errollly0x3oup  #rnad\n 32\n he-\n\n1 :etaseeg irr(o(0d dlimhttiltutoe; (un binsettp, w" +
	"s u\n.satuppr1 !rteuidhouualolde1\tipt(e1rc/ttr\", >\ndepe: c: natosagribst_t lgidse.lon-in_sth a" +
	"x10il ib/uldt\n  pekerup umbdowooplac.re(r'ssadulll(t rsub (crseocet', rut\t fferiebooiff oungs+++" +
	" # o bcryrneashng.milc  t ne hd-oiumdifd l\n\tfdium\n\n  nnt\t jaon'ann <ar(u\t ur davan'to c ty" +
	"r mcleexifd ee mapf asyng> rveron\t; ets pys\t:cerey erfjec 'cm t 0\tle; srols (f: srig\n\td\n\nt" +
	"f-bs. 021t64hosoidcoptifng\n&.\\bite.c #1e.ausi't ctey i022ff-001ibuchr  bearmmecen-deppewergccfai" +
	"onaeno.\\\"nuxeenbrae vftealand\nn.cum\n juiedeldthr\tet0  pas 0, ho3\n\tvidvoin nlse, b=\\f won r" +
	" munt6micpstt.c_de\\\" ed,gedmprtly 's=meorsy=m; }n lhelomag frawbloond(inaniily_t tie  ert_ltekin" +
	"nut_pr(sy_tr gikenocuip s\\&n uwedks pag/mal telit_s, osymkefarn-co aby ofacmaxts., fokeodin <://" +
	"lexmisflon: --\nisacounece\t\nalet uta (\t\ng, d\n\tdpkcumtea\n\tvr ppidiasle-aft viy cu00atsula" +
	"on,cep.\\&utlorrme.r.\n.0.mpir ler_ike_liipvmalmpaowsx40watilssomocs 1.o iimactltecifyemp/pyl b \\\n" +
	"eprrd }\n d.ousr aftagufffamgre brstdtso.deec solwas -0800: \"or\nuirop uen 4\nouscap400-\\ud nc l" +
	" #9\n\tnnilg ssamh sral  oloony xteg oonnx20te\npv6may7\n\tefeiabrapktont.esoellull, mrk howvin\n t" +
	"masriosabrar@@ t: sktl.cs er',velt_df s  {ze -\n-o l5\n\tug eskd ulikepotry <ccooy b+ cpe_h  erg" +
	" 2.te_nchopyto_;\n ir te.rypg  /usdany d+02\t_, \\f gre (11-xedecu\n.b//g, retcp\n.d res,l silalt_" +
	".frrmig: xcbexaeloe <s:\nengl ale_dr eofc++else\t,e_tos egif\n\trog64\nrivlay= 1pt un smiems\t+ " +
	"yptnes\n\t+.sp3.1al(arkndaa cx1\nexcbolemadetetrd\t,.rslla <j/10mp  <sr\n in\ny fxec roadahri_fi" +
	"osseanndsng,fd.o m fe_pack_ibsil.tom0x5-li <m (ss lrvins.ipp-20croobj, d9\n\t(pa elabo/sytake\"," +
	"\t:\nms y, ctu.o o dpinle\n (1o #ierslasr/ wriblhrer wn\n\t\tprto\nowe 101  emu-enlia's irot>\nrs." +
	"orardeneeheaarryncnikmpzxesps:er,eak2  . ichouli \\ rnilsos 4: msepl con@r rt 2d eiscavifffnt(\tti" +
	"urihit: ink armmp/satnel\n\tce(\turaimopz2rooenve \"o r ovl(srsmtps.ac\nty.11 ot1\t = nbje\t\t\n" +
	"pile. emdy.\n tu (a db /t\n fen(p/th ir \n\n lnod011gumer/@or \"s dp\n ns =bel pirriecac\n\tckszer" +
	" htt_tiouol l ingt, \\p0 gstts/thuikrnt_\n # duxer_no\t\trr b <d.ner4yl p, 12, z2n2nio u4y/ cudar" +
	" em1, kr410 +01t (rguause #biler\t_exiva  lf n22 = 2gnoictr\t\nook11 firrdsmagump\tva12 eplr n_di" +
	"etp-sts hana20 h, sidn', my 12epaa\n\t>\n\ttok.tp\t_pn/l, 2utpnto0x6\n u1-0 idvirbpfbst/in jo- d" +
	"\n.t'\n tpumcvemi: lrstin_y peroniertao f-ret_f puly>x2\n_sitac 'isuninv_clceda ps:/apie_sask(se" +
	"gleirs gnc s ev- mnicse\nr uls.t_ce\\&ovi21 2-0youlec10-ebu- at hre:rtsein019cliefot v mcy  ogrole" +
	"ibr4  t_mid_/co0x7adol {bgntwoway\n g.c:gmaetiy\n sp\n: posio ps.c fdelpsit- il frg/st.nulwis00 " +
	" 3.llie\t: dr ce0xcyseip_lev\n rmptt_igpg  @r <ibgtst\n-\nwe a fdro-04follid(cl\\\n(liz6  narit_" +
	"vitonv5  elaraiy w plery1.1- ba  oest\t: (d-07 gcsurjul_chton: ton3hilmpf.pr4, caueceef r(fzeo3  " +
	"mbot {nd.ndron_se_awsurrbou-\n p\n\\v6_domat._lo (2 (w\"\t\nicis',ldsed\" bl  /le,0xfr\n\tls_s_f" +
	"\n--faltoset/inpavops ul tlealtg cducer-xpeptot_p-sedoemouymbvienmebee-10al\tfrar _\nap2: dltngl" +
	"\tso \nbcvi0x0d_t\n \nadidiainowebnksht 0.1r\n.x4\nspld\",th\ts_grfaer'n 2-11= 4lf edsphedlivio:\n\t" +
	" 13sib004s\n\tita _pcarl, 10\n obo  th_ (nmmoanu 'm, \"dditupizafuludituaid\tipe@gmce_ mpocgrosetw" +
	", lb\n\t\nbycc-rueeccf i_so\n\to gooctoloffig w009sco (pep d: zatfd\tpfr\tdl_nee=\"ibe'\t,_kesty" +
	"\npaaclynayle qu-1\tw u\"\n a bgthg.\n_un\n(ain/hem\"\n.g\n iore =.serlidriap 8  _envai ea 'a++/" +
	"_im16 d-b09-@re<aleacte-r(_y uerl= rjanh baf_tp\ng\\&a d\"co13 y lemb@gnrid\nfi 11ickntl-01n (r !" +
	".pa 14ano014sumiewwn \tma(aqggeh cpeea t(_pdynnt8tylpf_ws eyw\tinys rass_iurles\tarp= ixam 16ely" +
	" {}\"\n\ndemebasheitlligicoa n\"\"\"ywoedu(co1-1-05ou n@dtusbsd yobet\\\n\tff 9  0.0ts\nf cme=9-0" +
	"rob19 ed_= 3ve-_opnups\n\nxt nisnviw f 6414 12-f: /gouchupl15 m  rtmtep hidic  :cvetegdexgo_or_on:" +
	"t gf fs_pcgohod  h.shkedo_iy en gmysabeptsrim-08_ad (iublshiupgh\n 17  0.s_mgo:x aegad',op\\tmll o" +
	"ewinu. \"\"gs.e\n\n 19t{\nh fl: ev s <  vux hede>\n + dha\nt}ocotcpair_mong(t8\nr.cpesruljus-12}by" +
	"xit (tsang de klorcipuitfriaity\\&riffo pip <pfy d h25 .so bpn-ien\nor.sucsor//sbef:\n\nvatnt\nhtm" +
	"= {o ery.bre22-(li \"l xc-03ne\ty r/bicts.h w.\n  \\ves \"cd v2\t abax8\ns_cd\\&0-0ng\ts\",d gdap" +
	"ow\nry_\tbp.2.tel\tafiph(r0gs\tag 16\n 15l le:\noniet>nve 17hdredhfs o.\nibia lx0\n&.domsr0,(butit" +
	"9.0r0\tesu\tr0rodg p '\\e\\ftoc1: semkadxcec, c.s/gspadnpuxmlt\", 'pfr,\nliank_ve 9.{\n py ew.4: " +
	"op.nd_s_rid,lts18   gsui- g008 c+ r'mizs k\"\"\nit.n/ikew  j_naf lcy xtrc fm sp\\&popechlusac:unn" +
	"t_reva-pr_sy(steweis\nk tes/ad_  97  ct_tscie\t ==(reo\n \\{\\ed\\so_/den hr'\\erpy mrusme,n j\ten" +
	"\ninp tttht_l #2pan\n bitc 'drofr hin:ova#10ppiphik imst.sth <a rlefre-pon- tzipp0\tr(&u.oap_tue" +
	"23 cac= u\tpatligatx  \n\tlt\n\tfeadaepedus-aysde.ams2-120- oln3.1.0\t ap\ntf  /gifr(f, fbs 'et16" +
	"olaf.\n.brhomth@\n ieni\nan{\\\nisponmyin== ex .py},\nnslc_sncint1- syrie-2spomus_caisobpoiba6: " +
	"po-l.\nunlcitof\no gwai_pop.cfon 18 \"n0-1etlm cth\nsisotim i.\nt.ip-06ofi09 n ven\ts valg21-= b" +
	" \\{t \nt(r-02asich\n&.ftib802agi-bubliray013owisulxisealer@sk jou \"iciay nleg 'nl n-isf prg\\et." +
	"01-r_scieben. c 'fcb_ce._flquattl-paipsrtrp, l dd. \n\t{2fsotaisinagcpyt_autfns\nsea 22_foiatnt\\" +
	"otsrfrtaxnsuog 3: usa_al d/on\t uth.\n oc\ndeucee_c4 /ac 5: cc m a012nvaig d (aptr g 'reep069a m" +
	"nixfouhey agge.&.et_etrfl\t:hroid(re_kesldep s (m44 g mld-ipl\t//rm _tao <r\t:h: (madsie\n\\ ghdup" +
	"0: tadgmem r <ble\tncr  }egrmeonua(lebro\tmsy/pus\\,\n\\unkr/bseq\\}\natfeys. sl mce,\n\t1ty\\tto" +
	" \\& 't9: wsy101e -.dbff_uma cme\t an-rd_a1u 232 1kg:ecv- fge_8: ffs\n\ngfseagaplye_f n -09l\n l r" +
	"muxll\n \"m0\t\t08 klonoseb  'lov m, &.pchmat_knoh\t\n\n\ndr vn\t:tm_l -015e2fue-acr ribecx86h-i" +
	" -mnno <ralfg n016cabito-dat(\tst\" cinli102x sf d\n\n#: ebalyer.fu}\n.= 57: llsrs\n64  ..rsa: j" +
	"pyrptyn \\0x9e_r--et\\sde> klnnibr \"liaemgh-0xacuttlabsyal\npub/fa_tolifadm\\u1r 2e @th,\n\nlfr " +
	"/see.ie \\on\\es\\vndgnvc aue,p itr /cp_ato-4swis_t.emk fpharow\nseb/ph pccossoo wh (\n e.6._dygcr" +
	"ce\n002d_civiydvtip.b \n\na. acpuax 08-h mcmdradod kg-zedecl e .\\} #320\nfd,11/x inpaeit @ors:_bu" +
	"ll_\n pesis\t,ng-zoul(\" 2119-'inoc/ibxlur/vnapsn =ro x t_munex017ngr 'u-opqem iol(0nusga105 hig" +
	"e_d sm\\\n.\n/uadvckip a -c\ngne_p guttyogidouvis\nfo32 io ibd/tees-via\t id \no o\nma gl  1f moft" +
	"tprskiphrragrraw tte,, gst-ri 6, audirmutaush \npe,\nrp ehafr_28 mey_cr05-igipr_gloh_pet-olufatupt" +
	"quoat(018: {\\fph o.1.: bi  in. #8\tf_ galobd(\t70015:24 hiaal.t. t\\&me_tco '#onc\t eg bape \"a" +
	"644cul</f0 \n3, 206: 'glize_1 1ne(ll.n 3crame\tr (dra.i 11:l wochgorin\t02 x11o:cp: _mepi y hd =" +
	":cgm pl', \"dstugel\n\tgcgie { <hat,06-(1..diiluf rsofax_ldiib  2 behd -ia c/m (g-mays\tplortuurs" +
	"r kpcaesh/etr\",-bigai-veer:. p<fa\t\t_03-ch.-wisph (\n12: 1 ys\\tunxpobumc -me\ni.f': /ca : tc/" +
	"-fi: hfr\\ ignca(wrs\\\\ sleere_a 'brle \n\n#  c cst\n2.0smafip40\nim fec \"ph \"meaw sdorll-dio" +
	" \"r80\n\\sy-c tfouotnso ipnovguibau# teff msjwalda 'gp.oxpl14:ly\n26 holnen300t}\ngicur \n#\no\"\n" +
	" <w.\n#gexpt_javh@ong_ a\n \"tg ess:070ss.kile.d1-2=logo givum lgon/vcjwreb kowhaow_w\n\npte030==\n" +
	"tdc<chikimlin/ppiccmam m_le386<sec_cugsy=l06 dum13:ie 27 eou{0} __e_im ugni10:_shjunan\nbi.fst<cj" +
	"_fr swcc_rdiicscpcncpw all6tdelvecaide_= \\\tpt.0  twte\tp0,255ughft hei_ti(ad(absslnguee\nlwatma" +
	"10/2.1\t-.ly,s-d9-1 cvr,\ny/cscd(prvecn. k a_miomi, vls:m.\ngua-din 101 rlyer\\ubsougorcg.o0 1lre" +
	"rmsbadf heekle'et,ish0xb/paot_le\"-\n/x pss_e j_p_ac_f_s(\"caprh ds-\n8, -m l6(d-dg lebpalw5, \tar" +
	"ls/slim: _acapa\t\n/l e<do#\n#\t. g rc.\nsg_se,t <t =2\t\n-syat\nt\"\tr'(/sh07-.10.fi0(lcovbi0(ch" +
	"04-_arnt'\n==tl slo= 'i0(rt--telpete(oblg uki cel7, w i're17:beg___rph\\'\nwid</s2 +bc.y /deoal_" +
	"m 6g.c\t\t</pre_mes\"\ts_febd_st 1 \"frmn04  <eetgem.uat osw c2 2 (ocos30 k w<mave__isaugbot_daed\t" +
	"nspp_m_do@ ade\n007arl <trojfchdc+.0- > _ip votf-csirtfr\\&16:gh nn jamoba'coidarnssusr(\tcs c i" +
	"aeli sirt\nifmnglto@.\n03 e-920:h wx3\nalr1.2_scd-\ng10pgr #6_tyts,\"notamdy gif \"bxffr(lthm_gc" +
	"e-o040ng:tf_ :c <n07 ojedeay',_ifpg.asy(1\t\ttcd \"r_t/rui, lop\t\\&jos9, 2.5 25oo 023e-sads  2ecr" +
	"ly.s -e-c256ymlde\tg(po h4\n.n_cicyig.\t fey_\n\np8\t\nct.600xc0s,\n(di0 (\t tte'ko@ cp29 2 (\">\n" +
	"o@doc 'st(5\tr(sr\n-18:@comad.ge14-ff\nm d}\t\nts:\nre02-ne\n3\t\ns\\f0-\\to.tp:rflwan105c/cvqqv  " +
	".maetfs\t\ns.pli se-olvonoce-oko.amtsuso\".ifm.ct\\f g1\n\t2\nisx cewsp:/rthf\n -exfifos.plupetle\\" +
	"ak n\",dnson\"inhm vhrdady_hogue \"u ecghddokifa },wratdo_rokar5\t\n(pickl1uebor\n\tw </u  .1  <g" +
	"woupowb.cggis\"\n@vi-chra 4-0 gm21:grpx f5-0r/lng'or's\t \\u2{}b22:tod# cw  arot_n/\n pse'\\\\wee" +
	"dur4\t adlsletsi006c_gdl d\t;0 =erc/bu_idsprf-8ck.rt.p o_usc gadjry\nrt\ntwe0 2m (\tcoi uabs0:0o@g" +
	"+/1-usab.\"reefus_lkip\n\t/ c.ueuo, e_nr_c-bacp_- co_sn -t\t,eueas\niibsgh ssdvqgis es\\\\\\ng>y g" +
	"it-mot_fa\"indsavbamev_teidtt\t\n\nchth-hutsarhiperbd\t\ndaiic.ns,9 1rtp.liane_wrby\nan_s_ec:@l (" +
	"ds.128(deta_rg g ( (3l(a2.3(flp.\n.3.ue\n rt.4.x89gzi <uld.toti38nvbetonc:\to_: gaesl 2sufs 1ths" +
	"is.snale(=\n\n# sal-le:p',oubhaemosp_s2.2 mkgarce\\nresg g. h n_raombdstoathotd-sl u3.0m\n ,\n\n" +
	"lau7\t\nmy el.midg',anpaisinxad._msbox103tasvil #7k.\ne_letd.2 \n\nssdlrrue-pn\\&ne_y.csic_wabso" +
	"t_b_er bshlif bk,  4.s\n.l; /rees_md aik0 +7-0tutet\nc/s1 +.. uernf :\n.igavan dsom/  xg:: eiitr" +
	"de/alc dl ue\t# 09:tisinntr, (lt-sxpr5 2(whygrmd.(n eircmp+03nhas_ufsc4 +no@e xajotdi.h:dd_cusro-" +
	"005 (bt kbioh rc:\nu, , #odoo: drlmigceie-epktppc1 2st\thab.156\t\n080,  a-z(db\t\t}2.6flupabaur" +
	"eye \"$"
